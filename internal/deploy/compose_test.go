// Package deploy checks the production deployment files. There is no Docker
// engine on CI machines, so docker-compose.yml is validated by structure: the
// services, images, ports and health checks it must have, and that every
// environment variable it hands to jml is one our code actually reads.
package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Ports       []string          `yaml:"ports"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Volumes []string `yaml:"volumes"`
	} `yaml:"services"`
}

func root(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Join(wd, "..", "..")
}

func load(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yml"))
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(data, &c))
	return c
}

func TestComposeServices(t *testing.T) {
	c := load(t)
	want := map[string]string{
		"postgresql":  "postgres:",
		"temporal":    "temporalio/auto-setup:",
		"temporal-ui": "temporalio/ui:",
		"worker":      "jml:",
		"starter":     "jml:",
	}
	for name, image := range want {
		svc, ok := c.Services[name]
		if !assert.True(t, ok, "service %s", name) {
			continue
		}
		assert.True(t, strings.HasPrefix(svc.Image, image), "%s image %q", name, svc.Image)
		assert.NotContains(t, svc.Image, ":latest-", name)
		require.NotNil(t, svc.Healthcheck, "%s has a health check", name)
		assert.NotEmpty(t, svc.Healthcheck.Test, name)
		for _, p := range svc.Ports {
			assert.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s publishes %s on loopback only", name, p)
		}
	}
	assert.NotNil(t, c.Services["worker"].Build, "the worker image is built from this repo")
	assert.Equal(t, "service_healthy", c.Services["temporal"].DependsOn["postgresql"].Condition)
	assert.Contains(t, c.Services["temporal-ui"].Ports, "127.0.0.1:8233:8080")
	assert.Contains(t, c.Services["starter"].Ports, "127.0.0.1:8080:8080")
	assert.Equal(t, "postgres12", c.Services["temporal"].Environment["DB"])
}

// TestComposeEnvIsReadByCode: a variable the compose file sets for a jml
// service must be read by our Go code (a string literal outside tests) or
// named by the mounted policy (token_env and friends). A typo here would
// otherwise be a silent misconfiguration in production.
func TestComposeEnvIsReadByCode(t *testing.T) {
	c := load(t)
	r := root(t)
	var code strings.Builder
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	require.NoError(t, err)
	policy, err := os.ReadFile(filepath.Join(r, "examples", "policy.yaml"))
	require.NoError(t, err, "the compose file mounts examples/policy.yaml")
	envRefs := regexp.MustCompile(`_env:\s*"?([A-Z0-9_]+)`).FindAllStringSubmatch(string(policy), -1)
	named := map[string]bool{}
	for _, m := range envRefs {
		named[m[1]] = true
	}
	for _, name := range []string{"worker", "starter"} {
		for key := range c.Services[name].Environment {
			read := strings.Contains(code.String(), `"`+key+`"`) || named[key]
			assert.True(t, read, "service %s sets %s, which nothing reads", name, key)
		}
	}
}

// TestComposeHasNoSecrets: secrets come from .env, never the file.
func TestComposeHasNoSecrets(t *testing.T) {
	c := load(t)
	for name, svc := range c.Services {
		for key, val := range svc.Environment {
			if regexp.MustCompile(`(?i)(PASSWORD|PWD|SECRET|TOKEN|KEYS?)$`).MatchString(key) {
				assert.True(t, strings.HasPrefix(val, "${"), "%s.%s must come from the environment, got a literal", name, key)
			}
		}
	}
}
