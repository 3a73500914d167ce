package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsCommandsExist: every command the README and docs/ tell an
// operator to run is a starter command, or installed by the README's
// set-up. The Temporal CLI is not (its module cannot be go-installed, and
// the set-up does not ask for it): a `temporal …` or `tctl …` command in
// the docs is refused, and so is a starter command that does not exist.
func TestDocsCommandsExist(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../README.md")
	span := regexp.MustCompile("`([^`\n]+)`")
	cmds := commands()
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		inBlock := false
		for i, line := range strings.Split(string(b), "\n") {
			where := filepath.Base(f) + ":" + itoa(i+1)
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inBlock = !inBlock
				continue
			}
			var texts []string
			if inBlock {
				texts = []string{line}
			} else {
				for _, m := range span.FindAllStringSubmatch(line, -1) {
					texts = append(texts, m[1])
				}
			}
			for _, text := range texts {
				for _, c := range commandLines(text) {
					fields := strings.Fields(c)
					switch fields[0] {
					case "temporal", "tctl":
						if len(fields) > 1 && regexp.MustCompile(`^[a-z][a-z-]+$`).MatchString(fields[1]) {
							t.Errorf("%s: %q uses the Temporal CLI, which the README's set-up does not install: use a starter command", where, c)
						}
					case "starter":
						if len(fields) < 2 || strings.HasPrefix(fields[1], "-") || strings.HasPrefix(fields[1], "<") {
							continue
						}
						checked++
						for _, sub := range strings.Split(fields[1], "|") {
							assert.Contains(t, cmds, sub, "%s: %q: no starter command %q", where, c, sub)
						}
					}
				}
			}
		}
	}
	assert.Greater(t, checked, 20, "the docs' starter commands were found")
}

// commandLines are the commands in a code line or span: after a shell
// prompt, a pipe, && or ;, with `go run ./starter` read as starter.
func commandLines(text string) []string {
	var out []string
	for _, part := range regexp.MustCompile(`\|\||&&|;|\$\(|\| `).Split(text, -1) {
		part = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), "$ "))
		part = strings.TrimPrefix(part, "go run ")
		part = strings.TrimPrefix(part, "./")
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }
