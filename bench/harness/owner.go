package harness

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OwnerOf finds which worker process holds the client end of a TCP
// connection to this process, given the client address the server saw
// (Linux /proc). It is how a test kills exactly the worker that is in the
// middle of a password hand-off.
func OwnerOf(workers []*Worker, clientAddr string) (*Worker, error) {
	_, port, err := net.SplitHostPort(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("owner: %w", err)
	}
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", p)
	inode := ""
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && strings.HasSuffix(fields[1], want) {
				inode = fields[9]
			}
		}
		f.Close()
	}
	if inode == "" {
		return nil, fmt.Errorf("owner: no socket with local port %d", p)
	}
	for _, w := range workers {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", w.Pid()))
		for _, fd := range fds {
			if link, _ := os.Readlink(fd); link == "socket:["+inode+"]" {
				return w, nil
			}
		}
	}
	return nil, fmt.Errorf("owner: no worker holds socket %s", inode)
}
