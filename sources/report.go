package sources

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jml-dev/jml/connectors"
	"github.com/jml-dev/jml/policy"
)

// maxReport bounds a report's size (a 100,000-person export is ~50 MB).
const maxReport = 256 << 20

// row is one person's record in a report: its fields by name, and where
// it was (line N of a CSV file, record N of a JSON one).
type row struct {
	At     string
	Fields map[string]string
}

// fetchReport reads a report whole: over HTTPS (with the source's auth,
// secrets from the environment) or from a file. Any failure fails the
// poll: a report read in part is never diffed.
func (p *Poller) fetchReport(ctx context.Context, name string, s policy.Source) ([]byte, string, error) {
	if s.File != "" {
		b, err := os.ReadFile(s.File)
		if err != nil {
			return nil, "", fmt.Errorf("report %s: read %s: %w", name, s.File, errors.Unwrap(err))
		}
		return b, formatOf(s.Format, s.File, "", b), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("report %s: %w", name, err)
	}
	if err := p.authorize(req, s.Auth); err != nil {
		return nil, "", fmt.Errorf("report %s: %w", name, err)
	}
	req.Header.Set("Accept", "application/json, text/csv;q=0.9, */*;q=0.1")
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("report %s: GET %s: %w", name, redactURL(s.URL), connectors.WithoutURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		msg := fmt.Sprintf("report %s: GET %s: %s", name, redactURL(s.URL), resp.Status)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += " (check the source's auth and the credential in its environment variable)"
		}
		return nil, "", errors.New(msg)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReport+1))
	if err != nil {
		return nil, "", fmt.Errorf("report %s: GET %s: reading the body: %w", name, redactURL(s.URL), err)
	}
	if len(b) > maxReport {
		return nil, "", fmt.Errorf("report %s: larger than %d bytes", name, maxReport)
	}
	if isHTML(resp.Header.Get("Content-Type"), b) {
		// A sign-in or error page answered 200: read as a report of nobody,
		// it would terminate everyone.
		return nil, "", fmt.Errorf("report %s: GET %s answered an HTML page, not a report (a sign-in page after an expired session?)", name, redactURL(s.URL))
	}
	return b, formatOf(s.Format, req.URL.Path, resp.Header.Get("Content-Type"), b), nil
}

func (p *Poller) authorize(req *http.Request, a policy.Credential) error {
	env := func(field, key string) (string, error) {
		v := p.getenv(key)
		if v == "" {
			return "", fmt.Errorf("auth.%s: environment variable %s is empty or unset", field, key)
		}
		return v, nil
	}
	switch a.Type {
	case "", "none":
	case "bearer":
		tok, err := env("token_env", a.TokenEnv)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case "basic":
		u, err := env("username_env", a.UsernameEnv)
		if err != nil {
			return err
		}
		pw, err := env("password_env", a.PasswordEnv)
		if err != nil {
			return err
		}
		req.SetBasicAuth(u, pw)
	case "header":
		v, err := env("value_env", a.ValueEnv)
		if err != nil {
			return err
		}
		req.Header.Set(a.Header, v)
	default:
		return fmt.Errorf("auth.type %q is not supported for report sources (bearer, basic, header)", a.Type)
	}
	return nil
}

// redactURL drops the query, which may carry a report's credentials.
func redactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}

// formatOf is json or csv: the policy's, else the name's extension, else
// the content type, else the first byte.
func formatOf(format, name, contentType string, b []byte) string {
	if format != "" {
		return format
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return "json"
	case ".csv":
		return "csv"
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		switch {
		case strings.HasSuffix(mt, "json"):
			return "json"
		case strings.HasSuffix(mt, "csv"):
			return "csv"
		}
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		return "json"
	}
	return "csv"
}

// isHTML says whether an answer is a web page: by its Content-Type, or by
// its first bytes when the server labels everything alike.
func isHTML(contentType string, b []byte) bool {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && (mt == "text/html" || mt == "application/xhtml+xml") {
		return true
	}
	head := strings.ToLower(string(bytes.TrimSpace(b[:min(len(b), 512)])))
	return strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html")
}

// parseReport splits a report into rows. A row that cannot be read is a
// problem naming its line (CSV) or record (JSON); the others are kept. A
// file that is not a report at all is an error.
func parseReport(b []byte, format, records string) ([]row, []string, error) {
	if format == "json" {
		return parseJSON(b, records)
	}
	return parseCSV(b)
}

func parseCSV(b []byte) ([]row, []string, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // Excel's BOM
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, errors.New("csv: empty report (no header line)")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("csv: header: %w", err)
	}
	for i, h := range header {
		header[i] = strings.TrimSpace(h)
	}
	var rows []row
	var problems []string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			problems = append(problems, fmt.Sprintf("line %d: malformed CSV row: %v: row skipped", pe.StartLine, pe.Err))
			continue
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %v: row skipped", line, err))
			continue
		}
		if len(rec) != len(header) {
			problems = append(problems, fmt.Sprintf("line %d: malformed CSV row: %d fields, the header has %d: row skipped", line, len(rec), len(header)))
			continue
		}
		f := make(map[string]string, len(rec))
		for i, v := range rec {
			f[header[i]] = v
		}
		rows = append(rows, row{At: "line " + strconv.Itoa(line), Fields: f})
	}
	return rows, problems, nil
}

func parseJSON(b []byte, records string) ([]row, []string, error) {
	var top any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(b, se.Offset)
			return nil, nil, fmt.Errorf("json: malformed at line %d, column %d: %v", line, col, se)
		}
		return nil, nil, fmt.Errorf("json: %w", err)
	}
	var list []any
	switch t := top.(type) {
	case []any:
		list = t
	case map[string]any:
		if records != "" {
			l, ok := t[records].([]any)
			if !ok {
				return nil, nil, fmt.Errorf("json: no list of records in field %q", records)
			}
			list = l
			break
		}
		for k, v := range t {
			if l, ok := v.([]any); ok {
				if list != nil {
					return nil, nil, errors.New("json: several lists of records: name the field with records:")
				}
				list, records = l, k
			}
		}
		if list == nil {
			return nil, nil, errors.New("json: no list of records (want an array, or an object with one array field such as Report_Entry)")
		}
	default:
		return nil, nil, errors.New("json: want an array of records or an object holding one")
	}
	var rows []row
	var problems []string
	for i, item := range list {
		at := fmt.Sprintf("record %d", i+1)
		obj, ok := item.(map[string]any)
		if !ok {
			problems = append(problems, at+": not an object: record skipped")
			continue
		}
		f := make(map[string]string, len(obj))
		for k, v := range obj {
			switch v := v.(type) {
			case nil:
			case string:
				f[k] = v
			case json.Number:
				f[k] = v.String()
			case bool:
				f[k] = strconv.FormatBool(v)
			default:
				j, _ := json.Marshal(v)
				f[k] = string(j)
			}
		}
		rows = append(rows, row{At: at, Fields: f})
	}
	return rows, problems, nil
}

func position(b []byte, off int64) (int, int) {
	off = min(max(off-1, 0), int64(len(b)))
	before := b[:off]
	return bytes.Count(before, []byte("\n")) + 1, int(off) - bytes.LastIndexByte(before, '\n')
}
