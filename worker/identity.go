package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/jml-dev/jml/policy"
)

// version is this binary's version: the module version it was built as,
// else its VCS revision (12 characters, "+dirty" when modified), else
// "dev".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// workerIdentity names this process on the Web UI's Workers page and in
// every activity's "last worker": what runs where.
func workerIdentity(version string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("jml-worker %s on %s pid %d", version, host, os.Getpid())
}

// buildID is the version plus a hash of the policy the worker runs, so
// the Workers page tells workers with different policies apart.
func buildID(version string, p *policy.Policy) string {
	b, err := json.Marshal(p)
	if err != nil {
		return version
	}
	sum := sha256.Sum256(b)
	return version + ".policy-" + hex.EncodeToString(sum[:4])
}
