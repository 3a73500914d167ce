package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/approval"
	"github.com/jml-dev/jml/audit/auditdb"
	"github.com/jml-dev/jml/codec"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/devstack"
	"github.com/jml-dev/jml/intake"
	"github.com/jml-dev/jml/internal/metrics"
	"github.com/jml-dev/jml/internal/temporalenv"
	"github.com/jml-dev/jml/logging"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/targets"
	"github.com/jml-dev/jml/workflows"
)

// openRunsInterval is how often /metrics may count the open runs in
// Temporal's visibility store (jml_runs_open, 12 count queries).
const openRunsInterval = 15 * time.Second

// config is the parsed command line.
type config struct {
	dev        bool
	dataDir    string
	devDB      string
	port       int
	uiPort     int
	intakeAddr string
	codecAddr  string
	policyPath string
	healthAddr string
	pwAddr     string
	sandbox    sandboxConfig
	// stepTimeout and sessionHeartbeat override the activities' defaults
	// (1m, 20s); zero keeps them.
	stepTimeout      time.Duration
	sessionHeartbeat time.Duration
	// shutdownGrace is how long in-flight steps may finish after SIGTERM.
	shutdownGrace time.Duration
	// cpuProfile: write a CPU profile of the whole run here (profiling).
	cpuProfile string
	// auditDB is the audit store: a PostgreSQL URL or a SQLite file
	// (default with --dev: audit.db under --data-dir).
	auditDB string
}

// usageError is bad input from the operator: one line, exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseFlags(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c config
	fs.BoolVar(&c.dev, "dev", false, "run an embedded Temporal server, Web UI and intake (development)")
	fs.StringVar(&c.dataDir, "data-dir", envOr(getenv, "JML_DATA_DIR", "jml-data"), "directory for the dev server's SQLite file and sandbox data")
	fs.StringVar(&c.devDB, "dev-db", "temporal.db", `dev server database file under --data-dir, or ":memory:"`)
	fs.IntVar(&c.port, "port", 7233, "dev server frontend port")
	fs.IntVar(&c.uiPort, "ui-port", 8233, "dev server Web UI port")
	fs.StringVar(&c.intakeAddr, "intake-addr", envOr(getenv, "JML_INTAKE_ADDR", "127.0.0.1:8080"), "address of the HR event intake (--dev; empty disables)")
	fs.StringVar(&c.codecAddr, "codec-addr", envOr(getenv, "JML_CODEC_ADDR", "127.0.0.1:0"), "address of the Web UI's codec endpoint (--dev, with JML_CODEC_KEYS; default a free loopback port)")
	fs.StringVar(&c.policyPath, "policy", getenv("JML_POLICY"), "policy file (default examples/dev-policy.yaml with --dev)")
	fs.StringVar(&c.healthAddr, "health-addr", getenv("JML_HEALTH_ADDR"), "address for /healthz, /readyz and /metrics (empty: off)")
	fs.StringVar(&c.pwAddr, "password-addr", getenv("JML_PASSWORD_ADDR"), "address for POST /v1/password-changes (HTTPS with JML_PASSWORD_TLS_CERT/KEY unless loopback; empty: off)")
	fs.StringVar(&c.auditDB, "audit-db", getenv("JML_AUDIT_DB"), "audit store: postgres://… or a SQLite file (default with --dev: audit.db under --data-dir)")
	c.sandbox.flags(fs, getenv)
	fs.StringVar(&c.cpuProfile, "cpuprofile", getenv("JML_CPUPROFILE"), "write a CPU profile of the worker to this file, finished at exit (SIGTERM)")
	c.shutdownGrace = 10 * time.Second
	for _, d := range []struct {
		v         *time.Duration
		name, env string
		usage     string
	}{
		{&c.stepTimeout, "step-timeout", "JML_STEP_TIMEOUT", "longest attempt of one step before it is retried (default 1m)"},
		{&c.sessionHeartbeat, "session-heartbeat", "JML_SESSION_HEARTBEAT", "how soon a run notices the worker holding its passwords is gone (default 20s)"},
		{&c.shutdownGrace, "shutdown-grace", "JML_SHUTDOWN_GRACE", "how long in-flight steps may finish after SIGTERM (default 10s)"},
	} {
		if v := getenv(d.env); v != "" {
			var err error
			if *d.v, err = time.ParseDuration(v); err != nil {
				return c, usageError{fmt.Sprintf("worker: %s=%q: want a duration like 30s", d.env, v)}
			}
		}
		fs.DurationVar(d.v, d.name, *d.v, d.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{fmt.Sprintf("worker: %v (see worker --help)", err)}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Sprintf("worker: unexpected argument %q (see worker --help)", fs.Arg(0))}
	}
	if c.auditDB == "" && c.dev {
		c.auditDB = filepath.Join(c.dataDir, "audit.db")
	}
	if c.stepTimeout < 0 || c.sessionHeartbeat < 0 || c.shutdownGrace < 0 {
		return c, usageError{"worker: --step-timeout, --session-heartbeat and --shutdown-grace must not be negative"}
	}
	return c, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, helpText)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log, err := logging.New(cfg.dev)
	if err != nil {
		fmt.Fprintf(stderr, "worker: logger: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "worker: --cpuprofile: %v\n", err)
			return 2
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	if err := serve(ctx, cfg, getenv, log, stdout); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, ue.msg)
			return 2
		}
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config, getenv func(string) string, log *zap.Logger, stdout io.Writer) error {
	pol, err := loadPolicy(cfg)
	if err != nil {
		return err
	}
	// Labels for the Workers page, from the policy as loaded (before the
	// dev sandbox points its targets at their actual addresses).
	ver := version()
	bid := buildID(ver, pol)

	pc, err := codec.FromEnv(getenv, cfg.dev, log)
	if err != nil {
		return usageError{fmt.Sprintf("worker: %v", err)}
	}
	td := &teardown{}
	defer td.run()

	var intakeLn, codecLn net.Listener
	if cfg.dev && cfg.intakeAddr != "" {
		if intakeLn, err = net.Listen("tcp", cfg.intakeAddr); err != nil {
			return usageError{fmt.Sprintf("worker: intake address %s: %v", cfg.intakeAddr, firstLine(err))}
		}
		td.add(func() { _ = intakeLn.Close() })
	}
	// The codec endpoint has its own listener, apart from the intake's: it
	// decrypts for whoever reaches it. It listens before the dev server
	// starts so the Web UI can be told where it lives.
	var codecOrigins []string
	if cfg.dev && pc != nil && cfg.codecAddr != "" {
		if codecOrigins, err = codec.ParseOrigins(getenv("JML_CODEC_CORS_ORIGINS")); err != nil {
			return usageError{fmt.Sprintf("worker: JML_CODEC_CORS_ORIGINS: %v", err)}
		}
		if codecLn, err = net.Listen("tcp", cfg.codecAddr); err != nil {
			return usageError{fmt.Sprintf("worker: codec address %s: %v", cfg.codecAddr, firstLine(err))}
		}
		td.add(func() { _ = codecLn.Close() })
	}

	var c client.Client
	promReg := metrics.NewRegistry() // served on --health-addr /metrics
	sdkMetrics, err := metrics.NewSDKHandler(promReg, log.Named("metrics"))
	if err != nil {
		return err
	}
	namespace := ""
	if cfg.dev {
		codecURL := ""
		if codecLn != nil {
			codecURL = "http://" + codecLn.Addr().String() + "/codec"
		}
		st, err := startDevStack(ctx, cfg, codecURL, log)
		if err != nil {
			return err
		}
		td.add(st.Stop)
		o := client.Options{Logger: logging.Temporal(log.Named("sdk")), MetricsHandler: sdkMetrics}
		codec.Apply(&o, pc)
		c, err = st.Dial(o)
		if err != nil {
			return fmt.Errorf("dial dev server: %w", err)
		}
		namespace = st.Namespace
		if st.UIURL != "" {
			codecOrigins = append(codecOrigins, st.UIURL)
		}
		if st.UIURL != "" && getenv("JML_UI_URL") == "" {
			// Notifications link runs in the embedded UI ({Run.ui_url}).
			env := getenv
			getenv = func(k string) string {
				if k == "JML_UI_URL" {
					return st.UIURL
				}
				return env(k)
			}
		}
		fmt.Fprintf(stdout, "Temporal Web UI:   %s/namespaces/%s/workflows\n", st.UIURL, st.Namespace)
		fmt.Fprintf(stdout, "Temporal frontend: %s (namespace %s)\n", st.FrontendAddr, st.Namespace)
		if st.DBPath != "" {
			fmt.Fprintf(stdout, "Data:              %s\n", st.DBPath)
		}
	} else {
		o, err := temporalenv.Options(getenv)
		if err != nil {
			return usageError{fmt.Sprintf("worker: %v", err)}
		}
		o.Logger = logging.Temporal(log.Named("sdk")) // temporalenv already applied the codec
		o.MetricsHandler = sdkMetrics
		if c, err = client.DialContext(ctx, o); err != nil {
			return fmt.Errorf("connect to Temporal at %s (namespace %s): %w", o.HostPort, o.Namespace, err)
		}
		namespace = o.Namespace
	}
	td.add(c.Close)
	// Runs set and query jml's search attributes: register missing ones,
	// or stop here with the commands that do.
	if err := temporalenv.CheckSearchAttributes(ctx, c.OperatorService(), namespace, log); err != nil {
		return usageError{"worker: " + err.Error()}
	}
	if err := metrics.RegisterOpenRuns(promReg, c, namespace, openRunsInterval, log.Named("metrics")); err != nil {
		return fmt.Errorf("worker metrics: %w", err)
	}

	getenv, restClient, stopSandbox, err := sandboxFor(cfg, pol, getenv, stdout)
	if err != nil {
		return err
	}
	td.add(stopSandbox)

	conns, err := targets.Build(ctx, pol, targets.Options{Getenv: getenv, Logger: log, AllowInsecure: cfg.dev})
	if err != nil {
		return usageError{fmt.Sprintf("worker: %v", err)}
	}
	// This process's own task queue: steps that read a secret held in this
	// vault are sent here (and password sync changes enter here).
	queue := hostQueue()
	var auditStore activities.AuditStore
	if cfg.auditDB != "" {
		st, err := auditdb.Open(ctx, cfg.auditDB)
		if err != nil {
			return fmt.Errorf("audit store %s: %w", auditdb.Redact(cfg.auditDB), err)
		}
		td.add(func() { _ = st.Close() })
		auditStore = st
		fmt.Fprintf(stdout, "Audit store:       %s\n", auditdb.Redact(cfg.auditDB))
	} else {
		log.Warn("no audit store (--audit-db, JML_AUDIT_DB): runs record no audit trail")
	}
	vault := secret.NewVault(time.Hour)
	go vault.Sweep(ctx, time.Minute)
	jmlMetrics, err := metrics.New(promReg, vault.Len)
	if err != nil {
		return fmt.Errorf("worker metrics: %w", err)
	}
	acts := activities.New(activities.Config{
		Policy:  pol,
		Targets: conns,
		Vault:   vault,
		Client:  c,
		// The identity directory reads memos, encrypted like every payload.
		DataConverter: codec.DataConverter(pc),
		Logger:        log.Named("activities"),
		Getenv:        getenv,
		// The dev stack's REST client: it alone trusts the sandbox HR portal.
		HTTPClient:       restClient,
		HostQueue:        queue,
		StepTimeout:      cfg.stepTimeout,
		SessionHeartbeat: cfg.sessionHeartbeat,
		Metrics:          jmlMetrics,
		Audit:            auditStore,
	})
	// Canceled and terminated runs lose their secrets within seconds.
	go activities.WipeClosedRuns(ctx, c, vault, log.Named("vault"), 2*time.Second)
	//lint:ignore SA1019 BuildID without versioning only labels the worker (Workers page).
	w := worker.New(c, contract.TaskQueue, worker.Options{EnableSessionWorker: true,
		Identity: workerIdentity(ver), BuildID: bid, WorkerStopTimeout: cfg.shutdownGrace,
		Interceptors: []interceptor.WorkerInterceptor{jmlMetrics.Interceptor()}})
	workflows.Register(w, acts)
	startSources(ctx, w, c, pol, codec.DataConverter(pc), getenv, cfg.dev, auditStore != nil, log.Named("sources"))
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	// On shutdown the pollers and the listeners stop together, at once.
	front := []func(){w.Stop}
	td.add(func() { parallel(front) })
	go func() {
		if err := ensureSchedules(ctx, c, pol, log.Named("schedules")); err != nil && ctx.Err() == nil {
			log.Error("attribute sync schedule not in line with the policy", zap.Error(err))
		}
	}()
	fmt.Fprintf(stdout, "Worker:            task queue %q, %s, build %s\n", contract.TaskQueue, workerIdentity(ver), bid)

	hw, err := startHostWorker(c, queue, acts, worker.Options{Identity: workerIdentity(ver), BuildID: bid, WorkerStopTimeout: cfg.shutdownGrace,
		Interceptors: []interceptor.WorkerInterceptor{jmlMetrics.Interceptor()}})
	if err != nil {
		return err
	}
	front = append(front, hw.Stop)
	pwHandler := passwordHandler(passwordEndpoint{
		token:   getenv("JML_PASSWORD_TOKEN"),
		svc:     temporalPasswords(c, vault, queue, acts),
		limiter: newAuthLimiter(5, 10*time.Second, time.Now),
		metrics: newPasswordMetrics(promReg),
		log:     log.Named("password"),
	})
	if cfg.pwAddr != "" {
		stopPW, err := servePasswords(cfg.pwAddr, pwHandler, getenv)
		if err != nil {
			return err
		}
		front = append(front, stopPW)
	}

	if cfg.healthAddr != "" {
		stopHealth, addr, err := serveHealth(cfg.healthAddr, c, promReg)
		if err != nil {
			return err
		}
		front = append(front, stopHealth)
		fmt.Fprintf(stdout, "Health, metrics:   http://%s/healthz, /readyz, /metrics\n", addr)
	} else if cfg.dev {
		fmt.Fprintln(stdout, "Health, metrics:   off (--health-addr 127.0.0.1:9090 serves /healthz, /readyz, /metrics)")
	}

	if intakeLn != nil {
		stopIntake := serveIntake(intakeLn, c, pol, pwHandler, codec.DataConverter(pc), getenv, log)
		front = append(front, stopIntake)
		fmt.Fprintf(stdout, "HR event intake:   http://%s/v1/events\n", intakeLn.Addr())
	}
	if codecLn != nil {
		stopCodec := serveHTTP(codecLn, codec.Handler(pc, codec.HandlerOptions{
			AllowOrigins: codecOrigins,
			BearerToken:  getenv("JML_CODEC_TOKEN"),
		}))
		front = append(front, stopCodec)
		fmt.Fprintf(stdout, "Codec endpoint:    http://%s/codec\n", codecLn.Addr())
	}
	fmt.Fprintln(stdout, "Ready. Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintf(stdout, "Stopping: in-flight steps have %s to finish.\n", cfg.shutdownGrace)
	return td.within(cfg.shutdownGrace + shutdownMargin)
}

func loadPolicy(cfg config) (*policy.Policy, error) {
	path := cfg.policyPath
	if path == "" && cfg.dev {
		path = filepath.Join("examples", "dev-policy.yaml")
		if _, err := os.Stat(path); err != nil {
			return &policy.Policy{}, nil
		}
	}
	if path == "" {
		return nil, usageError{"worker: no policy: set --policy or JML_POLICY"}
	}
	p, err := policy.Load(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("worker: policy %s:\n%v", path, err)}
	}
	return p, nil
}

func startDevStack(ctx context.Context, cfg config, codecURL string, log *zap.Logger) (*devstack.Stack, error) {
	if cfg.devDB != devstack.Memory {
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return nil, usageError{fmt.Sprintf("worker: data dir %s: %v", cfg.dataDir, firstLine(err))}
		}
	}
	st, err := devstack.Start(ctx, devstack.Options{
		DataDir:       cfg.dataDir,
		DBFile:        cfg.devDB,
		FrontendPort:  cfg.port,
		UIPort:        cfg.uiPort,
		CodecEndpoint: codecURL,
		Logger:        log.Named("temporal"),
	})
	if err != nil {
		if errors.Is(err, devstack.ErrPortInUse) || strings.Contains(err.Error(), "data dir") {
			return nil, usageError{fmt.Sprintf("worker: %v", firstLine(err))}
		}
		return nil, fmt.Errorf("dev server: %w", err)
	}
	return st, nil
}

// serveIntake serves the HR event intake (and the password changes).
func serveIntake(ln net.Listener, c client.Client, pol *policy.Policy, pw http.Handler, dc converter.DataConverter, getenv func(string) string, log *zap.Logger) func() {
	mux := http.NewServeMux()
	// Approval links are checked with the key this process signs them with
	// (unset or too short: links are refused).
	key, _ := approval.Key(getenv(approval.KeyEnv))
	mux.Handle("/", intake.New(intake.Config{
		Client:        c,
		Policy:        pol,
		DataConverter: dc,
		ApprovalKey:   key,
		HMACSecret:    getenv("JML_INTAKE_HMAC_SECRET"),
		BearerToken:   getenv("JML_INTAKE_TOKEN"),
		// The dev stack accepts unsigned events so the quick start needs no secret.
		AllowUnauthenticated: getenv("JML_INTAKE_HMAC_SECRET") == "" && getenv("JML_INTAKE_TOKEN") == "",
		Logger:               log.Named("intake"),
	}))
	mux.Handle("/v1/password-changes", pw)
	mux.Handle("/v1/password-changes/", pw)
	return serveHTTP(ln, mux)
}

// serveHTTP serves h on ln until the returned stop is called.
func serveHTTP(ln net.Listener, h http.Handler) func() {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// servePasswords serves the password-change endpoint on its own address:
// HTTPS, or plain HTTP on loopback only.
func servePasswords(addr string, h http.Handler, getenv func(string) string) (func(), error) {
	cert, key := getenv("JML_PASSWORD_TLS_CERT"), getenv("JML_PASSWORD_TLS_KEY")
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, usageError{fmt.Sprintf("worker: password address %s: %v", addr, err)}
	}
	loopback := host == "localhost" || net.ParseIP(host).IsLoopback()
	if (cert == "" || key == "") && !loopback {
		return nil, usageError{fmt.Sprintf("worker: password address %s is not loopback: set JML_PASSWORD_TLS_CERT and JML_PASSWORD_TLS_KEY", addr)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageError{fmt.Sprintf("worker: password address %s: %v", addr, firstLine(err))}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/password-changes", h)
	mux.Handle("/v1/password-changes/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if cert != "" && key != "" {
			_ = srv.ServeTLS(ln, cert, key)
			return
		}
		_ = srv.Serve(ln)
	}()
	return func() { _ = srv.Close() }, nil
}

// serveHealth answers /healthz (the process is up) and /readyz (Temporal
// answers) for container orchestrators; it returns the address it listens on.
func serveHealth(addr string, c client.Client, reg *prometheus.Registry) (func(), string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", usageError{fmt.Sprintf("worker: health address %s: %v", addr, firstLine(err))}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			http.Error(w, "temporal unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// The SDK's temporal_* metrics and jml's jml_* (internal/metrics).
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, ln.Addr().String(), nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

const helpText = `usage: worker [flags]

  --dev                 run an embedded Temporal server (SQLite file under --data-dir), the Web UI,
                        the HR event intake and the worker in one process
  --data-dir DIR        dev data directory (default ./jml-data, env JML_DATA_DIR)
  --dev-db FILE         dev database file, or ":memory:" for a throwaway server (default temporal.db)
  --port N              dev frontend port (default 7233)
  --ui-port N           dev Web UI port (default 8233)
  --intake-addr ADDR    dev intake address (default 127.0.0.1:8080, env JML_INTAKE_ADDR)
  --codec-addr ADDR     dev codec endpoint for the Web UI, apart from the intake, with JML_CODEC_KEYS
                        (env JML_CODEC_ADDR; default a free loopback port)
  --health-addr ADDR    serve /healthz, /readyz and Prometheus /metrics (env JML_HEALTH_ADDR;
                        docs/operations.md, "Monitoring and alerts")
  --password-addr ADDR  serve POST /v1/password-changes and GET /v1/password-changes/ID for password sync
                        groups (docs/password-sync.md; env JML_PASSWORD_ADDR; bearer JML_PASSWORD_TOKEN;
                        HTTPS with JML_PASSWORD_TLS_CERT/KEY unless loopback)
  --audit-db DSN        audit store (docs/audit.md): postgres://user@host/db or a SQLite file
                        (env JML_AUDIT_DB; default with --dev: audit.db under --data-dir)
  --policy FILE         policy file (env JML_POLICY; default examples/dev-policy.yaml with --dev)
  --step-timeout D      longest attempt of one step before it is retried (env JML_STEP_TIMEOUT; default 1m)
  --session-heartbeat D how soon a run notices that the worker holding its passwords is gone
                        (env JML_SESSION_HEARTBEAT; default 20s)
  --shutdown-grace D    after SIGTERM, how long running steps may finish before they are cancelled
                        (env JML_SHUTDOWN_GRACE; default 10s); a second SIGTERM exits at once
  --cpuprofile FILE     write a CPU profile of the worker to FILE, finished when it exits on SIGTERM
                        (env JML_CPUPROFILE; for go tool pprof)
  --sandbox             start the sandbox SCIM directory and HR portal sink without --dev (staging);
                        --dev always starts them. Data under --data-dir/sandbox, bearer token in its
                        token file (or env JML_SANDBOX_TOKEN), handed to the policy as JML_SANDBOX_TOKEN
  --sandbox-addr ADDR   sandbox SCIM directory address (env JML_SANDBOX_ADDR; default 127.0.0.1:8090,
                        or a free port when that one is busy)
  --hr-portal-addr ADDR sandbox HR portal HTTPS address (env JML_HR_PORTAL_ADDR; default 127.0.0.1:8443,
                        or a free port when that one is busy)

Without --dev the worker connects to TEMPORAL_ADDRESS (namespace TEMPORAL_NAMESPACE, API key
TEMPORAL_API_KEY, mTLS TEMPORAL_TLS_CERT / TEMPORAL_TLS_KEY / TEMPORAL_TLS_CA).
`
