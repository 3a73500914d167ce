package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jml-dev/jml/sandbox"
)

const sandboxUsage = `usage: starter sandbox users|groups|handoffs [flags]

  users      accounts in the dev sandbox directory (SCIM)
  groups     groups and their members
  handoffs   what the sandbox HR portal received: password handoffs (length and
             whether the directory accepts it, never the password) and notifications

flags:
  --json            print JSON instead of a table
  --url URL         sandbox SCIM base URL (env JML_SANDBOX_URL, default http://127.0.0.1:8090/scim/v2)
  --hr-portal URL   sandbox HR portal API (env JML_HR_PORTAL_URL, default https://127.0.0.1:8443/api)
  --data-dir DIR    the worker's data dir, for the token and certificate files
                    (env JML_DATA_DIR, default jml-data); JML_SANDBOX_TOKEN overrides the token file
`

// sandboxCLI reads the sandbox that `worker --dev` runs.
type sandboxCLI struct {
	scimURL, portalURL, dataDir, token string
	http                               *http.Client
}

// runSandbox lists the sandbox directory's users or groups, or the HR
// portal's records, over HTTP with the sandbox's bearer token.
func runSandbox(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, sandboxUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	what := args[0]
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	jsonOut := fs.Bool("json", false, "")
	c := sandboxCLI{http: &http.Client{Timeout: 15 * time.Second}}
	fs.StringVar(&c.scimURL, "url", sandboxEnv("JML_SANDBOX_URL", "http://127.0.0.1:8090"+sandbox.BasePath), "")
	fs.StringVar(&c.portalURL, "hr-portal", sandboxEnv("JML_HR_PORTAL_URL", "https://127.0.0.1:8443/api"), "")
	fs.StringVar(&c.dataDir, "data-dir", sandboxEnv("JML_DATA_DIR", "jml-data"), "")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "starter sandbox: %v\n\n%s", err, sandboxUsage)
		return 2
	}
	var err error
	if c.token, err = c.loadToken(); err != nil {
		fmt.Fprintf(stderr, "starter sandbox: %v\n", err)
		return 2
	}
	switch what {
	case "users":
		err = c.users(ctx, stdout, *jsonOut)
	case "groups":
		err = c.groups(ctx, stdout, *jsonOut)
	case "handoffs":
		err = c.handoffs(ctx, stdout, *jsonOut)
	default:
		fmt.Fprintf(stderr, "starter sandbox: unknown listing %q\n\n%s", what, sandboxUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "starter sandbox: %v\n", err)
		return 1
	}
	return 0
}

func sandboxEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func (c *sandboxCLI) loadToken() (string, error) {
	if v := os.Getenv("JML_SANDBOX_TOKEN"); v != "" {
		return v, nil
	}
	path := filepath.Join(c.dataDir, "sandbox", sandbox.TokenFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no sandbox token: %v (run from the directory you started `worker --dev` in, pass --data-dir, or set JML_SANDBOX_TOKEN)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// get reads one JSON document.
func (c *sandboxCLI) get(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", u, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/scim+json, application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("nothing listens at %s: is `go run ./worker --dev` running?", req.URL.Host)
		}
		return fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("GET %s: 401: the sandbox refused the token (is --data-dir the worker's?)", u)
	case resp.StatusCode != http.StatusOK:
		var e struct{ Detail, Error string }
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("GET %s: HTTP %d %s%s", u, resp.StatusCode, e.Detail, e.Error)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: not JSON: %w", u, err)
	}
	return nil
}

// list reads every page of a SCIM endpoint.
func (c *sandboxCLI) list(ctx context.Context, endpoint string) ([]map[string]any, error) {
	var all []map[string]any
	for start := 1; ; {
		var page struct {
			TotalResults int              `json:"totalResults"`
			Resources    []map[string]any `json:"Resources"`
		}
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {"200"}}
		if err := c.get(ctx, c.http, strings.TrimRight(c.scimURL, "/")+endpoint+"?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Resources...)
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return all, nil
		}
	}
}

func writeSandboxJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func sandboxField(m map[string]any, keys ...string) string {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func sandboxNames(items any, key string) string {
	list, _ := items.([]any)
	var out []string
	for _, it := range list {
		if m, ok := it.(map[string]any); ok {
			out = append(out, sandboxField(m, key))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *sandboxCLI) users(ctx context.Context, w io.Writer, asJSON bool) error {
	users, err := c.list(ctx, "/Users")
	if err != nil {
		return err
	}
	if asJSON {
		if users == nil {
			users = []map[string]any{}
		}
		return writeSandboxJSON(w, users)
	}
	if len(users) == 0 {
		fmt.Fprintf(w, "No accounts in the sandbox directory at %s.\n", c.scimURL)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER NAME\tDISPLAY NAME\tACTIVE\tDEPARTMENT\tTITLE\tGROUPS\tID")
	for _, u := range users {
		active := "yes"
		if b, ok := u["active"].(bool); ok && !b {
			active = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sandboxField(u, "userName"), orDash(sandboxField(u, "displayName")), active,
			orDash(sandboxField(u, sandbox.EnterpriseURN, "department")), orDash(sandboxField(u, "title")), sandboxNames(u["groups"], "display"), sandboxField(u, "id"))
	}
	fmt.Fprintf(tw, "\n%d account(s)\n", len(users))
	return tw.Flush()
}

func (c *sandboxCLI) groups(ctx context.Context, w io.Writer, asJSON bool) error {
	groups, err := c.list(ctx, "/Groups")
	if err != nil {
		return err
	}
	if asJSON {
		if groups == nil {
			groups = []map[string]any{}
		}
		return writeSandboxJSON(w, groups)
	}
	if len(groups) == 0 {
		fmt.Fprintf(w, "No groups in the sandbox directory at %s.\n", c.scimURL)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tID")
	for _, g := range groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", sandboxField(g, "displayName"), sandboxNames(g["members"], "display"), sandboxField(g, "id"))
	}
	return tw.Flush()
}

func (c *sandboxCLI) handoffs(ctx context.Context, w io.Writer, asJSON bool) error {
	pemPath := filepath.Join(c.dataDir, "sandbox", sandbox.CertFile)
	pem, err := os.ReadFile(pemPath)
	if err != nil {
		return fmt.Errorf("the HR portal's certificate: %v (pass the worker's --data-dir)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s holds no certificate", pemPath)
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var rec struct {
		Handoffs      []sandbox.Handoff      `json:"handoffs"`
		Notifications []sandbox.Notification `json:"notifications"`
	}
	if err := c.get(ctx, hc, strings.TrimRight(c.portalURL, "/")+"/handoffs", &rec); err != nil {
		return err
	}
	if asJSON {
		return writeSandboxJSON(w, rec)
	}
	if len(rec.Handoffs) == 0 {
		fmt.Fprintln(w, "No password handoffs received yet.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EMPLOYEE\tLOGIN\tPASSWORD\tDIRECTORY ACCEPTS IT\tDELIVERIES\tRECEIVED\tCLOSED")
		for _, h := range rec.Handoffs {
			accepted, closed := "no", "-"
			if h.PasswordAccepted {
				accepted = "yes"
			}
			if !h.ClosedAt.IsZero() {
				closed = h.ClosedAt.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d characters\t%s\t%d\t%s\t%s\n", h.EmployeeID, h.Login, h.PasswordLength, accepted,
				h.Deliveries, h.ReceivedAt.Local().Format(time.DateTime), closed)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(rec.Notifications) > 0 {
		fmt.Fprintln(w, "\nNotifications:")
		for _, n := range rec.Notifications {
			fmt.Fprintf(w, "  %s  %s\n", n.ReceivedAt.Local().Format(time.DateTime), n.Text)
		}
	}
	return nil
}
