// Package freeport picks TCP ports that are free now and likely to stay
// free until the caller binds them.
//
// Listening on port 0 and closing hands out a port from the kernel's
// ephemeral range, which every outgoing connection and every other
// listen-on-0 on the machine draws from too, so under parallel tests it is
// often taken before the caller binds it (a CI run failed that way). Ports
// picked here lie below the ephemeral range, where only other pickers look.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the bottom of the range picked from; below it live well-known
// and registered service ports.
const lowest = 15000

// Pick returns a port on ip that nothing listens on.
func Pick(ip string) (int, error) {
	top := ephemeralLow()
	for range 200 {
		p := lowest + rand.IntN(top-lowest)
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port on %s between %d and %d", ip, lowest, top)
}

// ephemeralLow is where the kernel's ephemeral ports begin (Linux reports
// it; 32768 is its default and below the IANA range elsewhere).
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return fallback
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= lowest+1000 {
		return fallback
	}
	return low
}
