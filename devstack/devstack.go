// Package devstack runs a complete Temporal development stack inside the
// jml process: the server (frontend, history, matching, worker services) on
// SQLite, with jml's search attributes pre-registered, and the Temporal Web
// UI from the embedded ui-server. It is what `worker --dev` starts, and what
// end-to-end tests start when they need a file-backed server.
package devstack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	serverlog "go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	_ "modernc.org/sqlite" // the driver the server itself uses

	"github.com/jml-dev/jml/internal/freeport"
	"github.com/jml-dev/jml/internal/temporalenv"
)

// Memory is the DBFile value for a throwaway in-memory database.
const Memory = ":memory:"

// SearchAttributes are jml's custom search attributes (all keyword),
// created with the dev namespace: temporalenv.SearchAttributes, the one list.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return temporalenv.SearchAttributes()
}

// Options configure a Stack. Zero ports mean "pick a free one".
type Options struct {
	DataDir       string // where the SQLite file lives (created if missing)
	DBFile        string // file name under DataDir, an absolute path, or Memory
	IP            string // bind address; default 127.0.0.1
	FrontendPort  int    // gRPC frontend; 7233 in `worker --dev`
	UIPort        int    // Web UI; 8233 in `worker --dev`; -1 disables the UI
	Namespace     string // default "default"
	CodecEndpoint string // codec server URL the UI calls to decode payloads
	Logger        *zap.Logger
}

// Stack is a running dev stack.
type Stack struct {
	server       temporal.Server
	quiet        zap.AtomicLevel
	ui           *uiserver.Server
	uiDone       chan error
	FrontendAddr string // host:port for client.Dial
	UIURL        string // "" when the UI is disabled
	Namespace    string
	DBPath       string // "" for in-memory
}

// ErrPortInUse is returned when a requested port is taken.
var ErrPortInUse = errors.New("port in use")

// Start boots the server and the UI and waits until the frontend answers.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	var err error
	if o.FrontendPort, err = port(o.IP, o.FrontendPort); err != nil {
		return nil, fmt.Errorf("frontend: %w", err)
	}
	if o.UIPort >= 0 {
		if o.UIPort, err = port(o.IP, o.UIPort); err != nil {
			return nil, fmt.Errorf("web UI: %w", err)
		}
	}

	sqlCfg, dbPath, err := sqlConfig(o)
	if err != nil {
		return nil, err
	}
	cfg, err := serverConfig(o, sqlCfg)
	if err != nil {
		return nil, err
	}
	ns, err := sqlite.NewNamespaceConfig(cfg.ClusterMetadata.CurrentClusterName, o.Namespace, false, SearchAttributes())
	if err != nil {
		return nil, fmt.Errorf("devstack: namespace config: %w", err)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("devstack: create namespace: %w", err)
	}

	// The server logs errors only, and nothing once Stop begins: shutting
	// down makes its services complain about each other.
	quiet := zap.NewAtomicLevelAt(zap.ErrorLevel)
	dyn := dynamicconfig.StaticClient{
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Activity pause/reset from the UI and CLI (operator re-runs).
		dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key(): true,
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(serverlog.NewZapLogger(o.Logger.WithOptions(zap.IncreaseLevel(quiet)))),
		temporal.WithDynamicConfigClient(dyn),
	)
	if err != nil {
		return nil, fmt.Errorf("devstack: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("devstack: start server: %w", err)
	}
	s := &Stack{
		server:       srv,
		quiet:        quiet,
		FrontendAddr: net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort)),
		Namespace:    o.Namespace,
		DBPath:       dbPath,
	}
	if err := s.waitFrontend(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	if o.UIPort >= 0 {
		s.ui = uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
			Host:                o.IP,
			Port:                o.UIPort,
			TemporalGRPCAddress: s.FrontendAddr,
			EnableUI:            true,
			DefaultNamespace:    o.Namespace,
			Codec:               uiconfig.Codec{Endpoint: o.CodecEndpoint},
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
			DisableNewsFetch:    true,
		}))
		s.uiDone = make(chan error, 1)
		go func() { s.uiDone <- s.ui.Start() }()
		s.UIURL = "http://" + net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort))
		if err := waitHTTP(ctx, s.UIURL, s.uiDone); err != nil {
			s.Stop()
			return nil, fmt.Errorf("devstack: web UI: %w", err)
		}
	}
	return s, nil
}

// Stop shuts the UI and the server down.
func (s *Stack) Stop() {
	if s.ui != nil {
		s.ui.Stop()
	}
	if s.server != nil {
		s.quiet.SetLevel(zap.FatalLevel)
		_ = s.server.Stop()
	}
}

// Dial returns a client for the stack's namespace.
func (s *Stack) Dial(o client.Options) (client.Client, error) {
	o.HostPort = s.FrontendAddr
	o.Namespace = s.Namespace
	return client.Dial(o)
}

func (s *Stack) waitFrontend(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := client.Dial(client.Options{HostPort: s.FrontendAddr, Namespace: s.Namespace, Logger: nopLogger{}})
	if err != nil {
		return fmt.Errorf("devstack: dial frontend: %w", err)
	}
	defer c.Close()
	for {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: frontend not healthy: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RegisterSearchAttributes adds jml's search attributes to a namespace of a
// running cluster (temporaltest, or a production cluster at set-up time)
// with temporalenv.EnsureSearchAttributes, the check the worker and the
// intake run at start-up. Existing attributes are fine.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	if _, err := temporalenv.EnsureSearchAttributes(ctx, c.OperatorService(), namespace); err != nil {
		return fmt.Errorf("register search attributes: %w", err)
	}
	return nil
}

// port checks that p is free on ip, or picks a free port when p is 0.
func port(ip string, p int) (int, error) {
	if p == 0 {
		// A port the server binds later: picked where it stays free.
		return freeport.Pick(ip)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
	if err != nil {
		return 0, fmt.Errorf("%w: %s:%d", ErrPortInUse, ip, p)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func sqlConfig(o Options) (*config.SQL, string, error) {
	c := &config.SQL{PluginName: sqliteplugin.PluginName, ConnectAttributes: map[string]string{}}
	if o.DBFile == Memory {
		c.ConnectAttributes["mode"] = "memory"
		c.ConnectAttributes["cache"] = "shared"
		c.DatabaseName = fmt.Sprintf("jml-%d-%d", os.Getpid(), time.Now().UnixNano())
		return c, "", nil
	}
	name := o.DBFile
	if name == "" {
		name = "temporal.db"
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(o.DataDir, name)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("data dir %s: %w", filepath.Dir(path), err)
	}
	// Probe writability now so a read-only dir is one clear error, not a
	// stack trace from deep inside the server.
	probe, err := os.CreateTemp(filepath.Dir(path), ".probe-*")
	if err != nil {
		return nil, "", fmt.Errorf("data dir %s is not writable: %w", filepath.Dir(path), err)
	}
	probe.Close()
	os.Remove(probe.Name())
	c.ConnectAttributes["mode"] = "rwc"
	c.DatabaseName = path
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := sqlite.SetupSchema(c); err != nil {
			return nil, "", fmt.Errorf("devstack: set up schema in %s: %w", path, err)
		}
	} else if err := forgetMembership(path); err != nil {
		return nil, "", err
	}
	return c, path, nil
}

// forgetMembership drops the cluster membership rows of the previous run.
// The services of this process get new ports, and while the old rows are
// unexpired the ring waits on hosts that are gone: a restart then serves
// nothing for about a minute ("Not enough hosts to serve the request").
// Only this process uses the file, so every row is stale.
func forgetMembership(path string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("devstack: open %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM cluster_membership"); err != nil {
		return fmt.Errorf("devstack: reset cluster membership in %s: %w", path, err)
	}
	return nil
}

func serverConfig(o Options, sqlCfg *config.SQL) (*config.Config, error) {
	const clusterName = "active"
	svc := func(p int) (config.Service, error) {
		var err error
		if p, err = port(o.IP, p); err != nil {
			return config.Service{}, err
		}
		return config.Service{RPC: config.RPC{GRPCPort: p, BindOnIP: o.IP}}, nil
	}
	services := map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		p := 0
		if name == "frontend" {
			p = o.FrontendPort
		}
		s, err := svc(p)
		if err != nil {
			return nil, err
		}
		services[name] = s
	}
	httpPort, err := port(o.IP, 0)
	if err != nil {
		return nil, err
	}
	fe := services["frontend"]
	fe.RPC.HTTPPort = httpPort
	services["frontend"] = fe
	addr := net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))

	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: o.IP}
	cfg.Persistence = config.Persistence{
		DefaultStore:     "sqlite",
		VisibilityStore:  "sqlite",
		NumHistoryShards: 1,
		DataStores:       map[string]config.DataStore{"sqlite": {SQL: sqlCfg}},
	}
	cfg.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             addr,
				HTTPAddress:            net.JoinHostPort(o.IP, strconv.Itoa(httpPort)),
			},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	cfg.Services = services
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = addr
	return cfg, nil
}

func waitHTTP(ctx context.Context, url string, done <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("ui server stopped: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("not answering at %s: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// nopLogger silences the SDK client's logger during the health probe.
type nopLogger struct{}

func (nopLogger) Debug(string, ...interface{}) {}
func (nopLogger) Info(string, ...interface{})  {}
func (nopLogger) Warn(string, ...interface{})  {}
func (nopLogger) Error(string, ...interface{}) {}
