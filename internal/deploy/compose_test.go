// Package deploy checks the production deployment files. There is no Docker
// engine on CI machines, so docker-compose.yml is validated by structure: the
// services, images (at the versions go.mod pins), jobs, ports and health
// checks it must have, that every environment variable it hands to a jml
// binary is one that binary's code reads, and that every secret is required
// and listed in .env.example. The production shape itself runs for real in
// internal/prodshape.
package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/jml-dev/jml/internal/temporalenv"
)

type service struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Restart     string            `yaml:"restart"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Volumes []string `yaml:"volumes"`
}

type compose struct {
	Version  *string            `yaml:"version"`
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
}

func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Join(wd, "..", "..")
}

func raw(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	require.NoError(t, err)
	return data
}

func load(t *testing.T) compose {
	t.Helper()
	var c compose
	require.NoError(t, yaml.Unmarshal(raw(t), &c))
	return c
}

// pinned is the version go.mod requires of a module.
func pinned(t *testing.T, module string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+v(\S+)`).FindSubmatch(b)
	require.NotNil(t, m, "go.mod requires %s", module)
	return string(m[1])
}

func TestComposeServices(t *testing.T) {
	c := load(t)
	assert.Nil(t, c.Version, "Compose v2 files have no top-level version")
	assert.NotEmpty(t, c.Name)
	server := pinned(t, "go.temporal.io/server")
	ui := pinned(t, "github.com/temporalio/ui-server/v2")
	want := map[string]string{
		"postgresql":      "postgres:15",
		"temporal-schema": "temporalio/admin-tools:" + server,
		"temporal":        "temporalio/server:" + server,
		"temporal-setup":  "temporalio/admin-tools:" + server,
		"temporal-ui":     "temporalio/ui:" + ui,
		"worker":          "jml:",
		"starter":         "jml:",
	}
	for name, image := range want {
		svc, ok := c.Services[name]
		if !assert.True(t, ok, "service %s", name) {
			continue
		}
		if strings.HasSuffix(image, ":") {
			assert.True(t, strings.HasPrefix(svc.Image, image), "%s image %q", name, svc.Image)
		} else {
			assert.Equal(t, image, svc.Image, "%s runs the version jml pins and tests", name)
		}
		assert.NotContains(t, svc.Image, "auto-setup", "%s: auto-setup is deprecated and dev-only", name)
		for _, p := range svc.Ports {
			assert.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s publishes %s on loopback only", name, p)
		}
		for dep, d := range svc.DependsOn {
			assert.Contains(t, []string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition, "%s depends on %s", name, dep)
			assert.Contains(t, c.Services, dep, "%s depends on a service that exists", name)
		}
		if strings.HasSuffix(name, "-schema") || strings.HasSuffix(name, "-setup") {
			assert.Equal(t, "no", svc.Restart, "%s is a one-shot job", name)
			continue
		}
		require.NotNil(t, svc.Healthcheck, "%s has a health check", name)
		assert.NotEmpty(t, svc.Healthcheck.Test, name)
	}
	assert.NotNil(t, c.Services["worker"].Build, "the worker image is built from this repo")
	assert.Equal(t, "service_healthy", c.Services["temporal-schema"].DependsOn["postgresql"].Condition)
	assert.Equal(t, "service_completed_successfully", c.Services["temporal"].DependsOn["temporal-schema"].Condition)
	assert.Equal(t, "service_healthy", c.Services["temporal-setup"].DependsOn["temporal"].Condition)
	for _, name := range []string{"worker", "starter"} {
		assert.Equal(t, "service_completed_successfully", c.Services[name].DependsOn["temporal-setup"].Condition,
			"%s starts only once the namespace and search attributes exist", name)
	}
	assert.Contains(t, c.Services["temporal-ui"].Ports, "127.0.0.1:8233:8080")
	assert.Contains(t, c.Services["starter"].Ports, "127.0.0.1:8080:8080")
	assert.Equal(t, "postgres12", c.Services["temporal"].Environment["DB"])
	// Temporal's PostgreSQL schema keeps membership ports in a SMALLINT.
	for key, val := range c.Services["temporal"].Environment {
		if strings.HasSuffix(key, "_MEMBERSHIP_PORT") {
			assert.Regexp(t, `^([1-9][0-9]{0,3}|[12][0-9]{4}|3[0-1][0-9]{3}|32[0-6][0-9]{2}|327[0-5][0-9]|3276[0-7])$`, val, "%s must be <= 32767", key)
		}
	}
}

// TestComposeSchemaJob: temporal-sql-tool creates and updates both
// databases, from the schema directories the admin-tools image ships.
func TestComposeSchemaJob(t *testing.T) {
	job := c(t, "temporal-schema")
	for _, want := range []string{"temporal-sql-tool", " create", "setup-schema -v 0.0", "update-schema -d", "/etc/temporal/schema/postgresql/v12/", "temporal:temporal", "temporal_visibility:visibility"} {
		assert.Contains(t, job, want)
	}
	assert.NotContains(t, job, "|| true")
}

// TestComposeSetupJob: the namespace and each of jml's search attributes,
// with retries, and a failure that fails the job.
func TestComposeSetupJob(t *testing.T) {
	job := c(t, "temporal-setup")
	assert.NotContains(t, job, "|| true", "the job must not always succeed")
	assert.Contains(t, job, "namespace create")
	assert.Contains(t, job, "search-attribute create")
	assert.Contains(t, job, "--type Keyword")
	assert.Contains(t, job, "exit 1")
	assert.Contains(t, job, "until ", "retries while the server settles")
	for name := range temporalenv.SearchAttributes() {
		assert.Contains(t, job, name)
	}
}

func c(t *testing.T, name string) string {
	t.Helper()
	svc, ok := load(t).Services[name]
	require.True(t, ok, "service %s", name)
	return strings.Join(append(append([]string{}, svc.Entrypoint...), svc.Command...), " ")
}

// TestComposeCodecEndpoint: the UI decodes through the starter's /codec, on
// the codec listener (not the intake's) the starter publishes on loopback,
// behind a token, and the starter allows the UI's origin.
func TestComposeCodecEndpoint(t *testing.T) {
	cf := load(t)
	ui, st := cf.Services["temporal-ui"], cf.Services["starter"]
	assert.Equal(t, "http://127.0.0.1:8081/codec", ui.Environment["TEMPORAL_CODEC_ENDPOINT"])
	assert.Equal(t, "0.0.0.0:8081", st.Environment["JML_CODEC_ADDR"])
	assert.Contains(t, st.Ports, "127.0.0.1:8081:8081")
	assert.NotEmpty(t, st.Environment["JML_CODEC_TOKEN"])
	assert.Equal(t, []string{"/usr/local/bin/starter", "serve"}, st.Entrypoint)
	assert.Contains(t, strings.Split(st.Environment["JML_CODEC_CORS_ORIGINS"], ","), "http://127.0.0.1:8233", "the UI's published origin")
	assert.Contains(t, ui.Environment["TEMPORAL_CORS_ORIGINS"], "http://127.0.0.1:8233")
}

// binaryCode is the non-test Go source of a main package and every package
// of this module it imports.
func binaryCode(t *testing.T, pkg string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", pkg)
	cmd.Dir = root(t)
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps %s", pkg)
	r, err := filepath.Abs(root(t))
	require.NoError(t, err)
	var code strings.Builder
	for _, dir := range strings.Fields(string(out)) {
		if dir != r && !strings.HasPrefix(dir, r+string(filepath.Separator)) {
			continue // another module's package
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			code.Write(b)
		}
	}
	return code.String()
}

// TestComposeEnvIsReadByItsBinary: a variable the compose file sets for a
// jml service must be read by the code of the binary that service runs (a
// string literal in that binary's packages), or be named by the policy the
// worker mounts (token_env and friends). A typo, or a variable only another
// binary reads, would otherwise be a silent misconfiguration.
func TestComposeEnvIsReadByItsBinary(t *testing.T) {
	cf := load(t)
	r := root(t)
	policy, err := os.ReadFile(filepath.Join(r, "examples", "policy.yaml"))
	require.NoError(t, err, "the compose file mounts examples/policy.yaml")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`_env:\s*"?([A-Z0-9_]+)`).FindAllStringSubmatch(string(policy), -1) {
		named[m[1]] = true
	}
	code := map[string]string{}
	for _, name := range []string{"worker", "starter"} {
		svc := cf.Services[name]
		require.NotEmpty(t, svc.Entrypoint, "%s names its binary", name)
		bin := filepath.Base(svc.Entrypoint[0])
		require.Contains(t, []string{"worker", "starter"}, bin)
		if code[bin] == "" {
			code[bin] = binaryCode(t, "./"+bin)
		}
		for key := range svc.Environment {
			read := strings.Contains(code[bin], `"`+key+`"`) || (bin == "worker" && named[key])
			assert.True(t, read, "service %s sets %s, which the %s binary does not read", name, key, bin)
		}
	}
}

// TestComposeSecretsAreRequired: secrets come from .env, never the file;
// each is required (${VAR:?}) so a missing one stops compose instead of
// starting a process that exits and restarts forever; .env.example lists
// every variable the file reads.
func TestComposeSecretsAreRequired(t *testing.T) {
	cf := load(t)
	secret := regexp.MustCompile(`(?i)(PASSWORD|PWD|SECRET|TOKEN|KEYS?|ACTIVE_KEY)$`)
	for name, svc := range cf.Services {
		for key, val := range svc.Environment {
			if secret.MatchString(key) {
				assert.Regexp(t, `^\$\{[A-Z0-9_]+:\?[^}]+\}$`, val, "%s.%s must be a required variable", name, key)
			}
		}
	}
	data := raw(t)
	assert.NotRegexp(t, `\$\{[A-Z0-9_]+:-\}`, string(data), "no variable defaults to empty")
	example, err := os.ReadFile(filepath.Join(root(t), ".env.example"))
	require.NoError(t, err, ".env.example exists")
	// Variables used outside comments.
	uses := regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAll(data, nil)
	for _, m := range regexp.MustCompile(`[^$]\$\{([A-Z0-9_]+)`).FindAllSubmatch(uses, -1) {
		assert.True(t, bytes.Contains(example, append(append([]byte("\n"), m[1]...), '=')), ".env.example lists %s", m[1])
	}
}
