package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jml-dev/jml/intake"
)

// runPost sends an HR event file to the intake, signed with
// JML_INTAKE_HMAC_SECRET when it is set (or with JML_INTAKE_TOKEN as a
// bearer token), and prints the intake's answer.
func runPost(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("post", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr("JML_INTAKE_URL", "http://127.0.0.1:8080/v1/events"), "intake URL (env JML_INTAKE_URL)")
	pos, err := parseAnywhere(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: starter post [--url URL] EVENT.json")
		return 2
	}
	body, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "starter post: %v\n", err)
		return 2
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "starter post: %v\n", err)
		return 2
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case os.Getenv("JML_INTAKE_HMAC_SECRET") != "":
		ts, sig := intake.Sign([]byte(os.Getenv("JML_INTAKE_HMAC_SECRET")), time.Now(), body)
		req.Header.Set(intake.HeaderTimestamp, ts)
		req.Header.Set(intake.HeaderSignature, sig)
	case os.Getenv("JML_INTAKE_TOKEN") != "":
		req.Header.Set("Authorization", "Bearer "+os.Getenv("JML_INTAKE_TOKEN"))
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "starter post: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var pretty bytes.Buffer
	if json.Indent(&pretty, answer, "", "  ") == nil {
		answer = pretty.Bytes()
	}
	fmt.Fprintf(stdout, "%s\n%s\n", resp.Status, strings.TrimSpace(string(answer)))
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode/100 == 4 {
			return 2
		}
		return 1
	}
	return 0
}
