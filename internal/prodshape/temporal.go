package prodshape

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	serverlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/jml-dev/jml/internal/temporalenv"
)

// The databases the server uses.
const (
	TemporalDB   = "temporal"
	VisibilityDB = "temporal_visibility"
)

func (pg *Postgres) sqlConfig(db string) *config.SQL {
	return &config.SQL{
		PluginName:      postgresql.PluginName, // postgres12
		ConnectAddr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(pg.port)),
		ConnectProtocol: "tcp",
		User:            "temporal",
		Password:        pg.password,
		DatabaseName:    db,
		MaxConns:        20,
		MaxIdleConns:    20,
		MaxConnLifetime: time.Hour,
	}
}

// SetupSchemas does what the compose file's temporal-schema job does with
// temporal-sql-tool, through the same code (go.temporal.io/server/tools/sql
// at the pinned version): create each database, setup-schema -v 0.0, then
// update-schema to the newest version shipped with the server.
func SetupSchemas(t testing.TB, pg *Postgres, logger serverlog.Logger) {
	t.Helper()
	for _, s := range []struct{ db, schemaName string }{
		{TemporalDB, "postgresql/v12/temporal"},
		{VisibilityDB, "postgresql/v12/visibility"},
	} {
		if err := sqltool.DoCreateDatabase(pg.sqlConfig(s.db), "postgres", logger); err != nil {
			t.Fatalf("create database %s: %v", s.db, err)
		}
		conn, err := sqltool.NewConnection(pg.sqlConfig(s.db), logger)
		if err != nil {
			t.Fatalf("connect to %s: %v", s.db, err)
		}
		if err := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger).Run(); err != nil {
			t.Fatalf("setup-schema %s: %v", s.db, err)
		}
		if err := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: s.db, SchemaName: s.schemaName}, logger).Run(); err != nil {
			t.Fatalf("update-schema %s: %v", s.db, err)
		}
		conn.Close()
	}
}

// StartTemporal runs the pinned Temporal server in this process on
// PostgreSQL (postgres12 persistence and visibility, shards history
// shards), every gRPC and membership port at most 32767, stopped at tb's
// cleanup. It returns the frontend address.
func StartTemporal(t testing.TB, pg *Postgres, logger serverlog.Logger, shards int32) string {
	t.Helper()
	const clusterName = "active"
	services := map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		services[name] = config.Service{RPC: config.RPC{GRPCPort: FreePort(t), MembershipPort: FreePort(t), BindOnIP: "127.0.0.1"}}
	}
	fe := services["frontend"]
	fe.RPC.HTTPPort = FreePort(t)
	services["frontend"] = fe
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(fe.RPC.GRPCPort))

	cfg := &config.Config{}
	cfg.Global.Membership = config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: "127.0.0.1"}
	cfg.Persistence = config.Persistence{
		DefaultStore:     "default",
		VisibilityStore:  "visibility",
		NumHistoryShards: shards,
		DataStores: map[string]config.DataStore{
			"default":    {SQL: pg.sqlConfig(TemporalDB)},
			"visibility": {SQL: pg.sqlConfig(VisibilityDB)},
		},
	}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             addr,
				HTTPAddress:            net.JoinHostPort("127.0.0.1", strconv.Itoa(fe.RPC.HTTPPort)),
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

	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicconfig.StaticClient{
			// As the dev server (devstack): the operator commands of
			// docs/operations.md (activity pause/reset), and visibility
			// queries that operators' and the bench's polling make.
			dynamicconfig.FrontendEnableUpdateWorkflowExecution.Key():        true,
			dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		}),
	)
	if err != nil {
		t.Fatalf("temporal server: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start temporal server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return addr
}

// SetupNamespace does what the compose file's temporal-setup job does: wait
// for the frontend, create the namespace, register jml's search attributes
// and check they are there — retrying each until a deadline, then failing
// loudly (never `|| true`).
func SetupNamespace(t testing.TB, addr, namespace string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	retry := func(what string, f func() error) {
		t.Helper()
		var err error
		for {
			if err = f(); err == nil {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: %v", what, err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	var c client.Client
	retry("connect to "+addr, func() error {
		var err error
		c, err = client.DialContext(ctx, client.Options{HostPort: addr, Namespace: namespace})
		return err
	})
	defer c.Close()
	retry("create namespace "+namespace, func() error {
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace: namespace, WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if errors.As(err, &exists) {
			return nil
		}
		return err
	})
	retry("register search attributes", func() error {
		_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
			Namespace: namespace, SearchAttributes: temporalenv.SearchAttributes(),
		})
		var exists *serviceerror.AlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return err
		}
		list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
		if err != nil {
			return err
		}
		for name := range temporalenv.SearchAttributes() {
			if list.CustomAttributes[name] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
				return errors.New(name + " is not registered as Keyword yet")
			}
		}
		return nil
	})
}

// ServerLogger writes the server's warnings and errors to a file shown
// when the test fails.
func ServerLogger(t testing.TB, dir string) serverlog.Logger {
	t.Helper()
	path := filepath.Join(dir, "temporal.log")
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.OutputPaths = []string{path}
	zc.ErrorOutputPaths = []string{path}
	zc.Sampling = nil
	l, err := zc.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.Sync()
		if t.Failed() {
			b, _ := os.ReadFile(path)
			t.Logf("temporal.log (last 3 KiB):\n%s", tail(b, 3<<10))
		}
	})
	return serverlog.NewZapLogger(l)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
