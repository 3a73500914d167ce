package registry_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportGraph holds the dependency rules: connectors know neither the
// policy nor the transformer language (they get rendered attributes and a
// renderer), and workflows import no connector (contract names live in
// small shared packages such as notify).
func TestImportGraph(t *testing.T) {
	const mod = "github.com/jml-dev/jml/"
	deps := goList(t, "-deps", "./connectors/...")
	for _, banned := range []string{mod + "policy", mod + "transform"} {
		assert.NotContains(t, deps, banned, "go list -deps ./connectors/... must not hold %s", banned)
	}
	for _, imp := range goList(t, "-f", "{{join .Imports \"\\n\"}}", "./workflows") {
		assert.False(t, strings.HasPrefix(imp, mod+"connectors/"), "workflows imports %s", imp)
	}
	// The names shared across processes are declared in package contract,
	// which every package can import because it imports nothing of jml.
	for _, dep := range goList(t, "-deps", "./contract") {
		assert.False(t, strings.HasPrefix(dep, mod) && dep != mod+"contract", "contract depends on %s", dep)
	}
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.Fields(string(out))
}
