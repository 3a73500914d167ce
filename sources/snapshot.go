package sources

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// entry is what a poller remembers of one person between polls: a digest
// of the mapped attributes (never the attributes) and whether the person
// was active.
type entry struct {
	Digest string
	Active bool
}

// snapshot is every person a source knows, by employee ID.
type snapshot map[string]entry

// encode is the compact form kept in the poller's history: gzip of sorted
// "employeeID TAB digest TAB A|I" lines (about 12 bytes a person).
func (s snapshot) encode() []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, id := range slices.Sorted(maps.Keys(s)) {
		e := s[id]
		flag := "I"
		if e.Active {
			flag = "A"
		}
		fmt.Fprintf(zw, "%s\t%s\t%s\n", id, e.Digest, flag)
	}
	_ = zw.Close() // writes to memory cannot fail
	return buf.Bytes()
}

func decodeSnapshot(b []byte) (snapshot, error) {
	s := snapshot{}
	if len(b) == 0 {
		return s, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("snapshot: malformed line %q", sc.Text())
		}
		s[f[0]] = entry{Digest: f[1], Active: f[2] == "A"}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return s, nil
}

func (s snapshot) active() int {
	n := 0
	for _, e := range s {
		if e.Active {
			n++
		}
	}
	return n
}

// digest identifies a person's mapped attributes (encoding/json sorts keys).
func digest(attrs map[string]string) string {
	b, _ := json.Marshal(attrs)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
