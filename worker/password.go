package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/jml-dev/jml/activities"
	"github.com/jml-dev/jml/contract"
	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/secret"
	"github.com/jml-dev/jml/workflows"
)

// A password change enters jml here, in the worker process, because the new
// password must go straight into this worker's in-memory vault: only its
// handle reaches Temporal. The password sync's activities then run on this
// process's own task queue (workflows.HostTaskQueue), where the vault is.

// passwordChange is the body of POST /v1/password-changes.
type passwordChange struct {
	Group      string            `json:"group"`
	EmployeeID string            `json:"employee_id"`
	Password   *string           `json:"password"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// startPasswordSync starts the workflow; a func so the handler's own logic
// is testable without a cluster.
type startPasswordSync func(ctx context.Context, req activities.PasswordSyncRequest, pw secret.Secret) (workflowID string, err error)

// hostQueue names this process's task queue for password steps.
func hostQueue() string {
	host, _ := os.Hostname()
	return contract.HostTaskQueue(fmt.Sprintf("%s-%d", host, os.Getpid()))
}

// startHostWorker polls this process's queue with the same activities.
func startHostWorker(c client.Client, queue string, acts *activities.Activities, o worker.Options) (worker.Worker, error) {
	w := worker.New(c, queue, o)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{SkipInvalidStructFunctions: true})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start host worker on %s: %w", queue, err)
	}
	return w, nil
}

func temporalStarter(c client.Client, vault *secret.Vault, queue string) startPasswordSync {
	return func(ctx context.Context, req activities.PasswordSyncRequest, pw secret.Secret) (string, error) {
		run, err := workflows.StartPasswordSync(ctx, c, vault, queue, req, pw)
		if err != nil {
			return "", err
		}
		return run.GetID(), nil
	}
}

// passwordHandler serves POST /v1/password-changes. It needs the bearer
// token JML_PASSWORD_TOKEN (no token: the endpoint answers 503), refuses
// groups the policy does not define, and never echoes or logs the body.
func passwordHandler(pol *policy.Policy, token string, start startPasswordSync) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeProblem(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		if token == "" {
			writeProblem(w, http.StatusServiceUnavailable, "password changes are off: set JML_PASSWORD_TOKEN")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeProblem(w, http.StatusUnauthorized, "bearer token missing or not accepted")
			return
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			writeProblem(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return
		}
		var in passwordChange
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeProblem(w, http.StatusRequestEntityTooLarge, "body over 16 KiB")
				return
			}
			// The decoder's message can quote the body: say only where it broke.
			writeProblem(w, http.StatusBadRequest, "malformed JSON body")
			return
		}
		var missing []string
		if in.Group == "" {
			missing = append(missing, "group")
		}
		if in.EmployeeID == "" {
			missing = append(missing, "employee_id")
		}
		if in.Password == nil || *in.Password == "" {
			missing = append(missing, "password")
		}
		if len(missing) > 0 {
			writeProblem(w, http.StatusUnprocessableEntity, "missing "+strings.Join(missing, ", "))
			return
		}
		if !hasGroup(pol, in.Group) {
			writeProblem(w, http.StatusUnprocessableEntity, fmt.Sprintf("group: no password sync group %q in the policy", in.Group))
			return
		}
		pw := secret.New(*in.Password)
		*in.Password = ""
		id, err := start(r.Context(), activities.PasswordSyncRequest{Group: in.Group, EmployeeID: in.EmployeeID, Attributes: in.Attributes}, pw)
		if err != nil {
			writeProblem(w, http.StatusServiceUnavailable, "could not start the password sync; retry")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"workflow_id": id})
	})
}

func hasGroup(pol *policy.Policy, name string) bool {
	for _, g := range pol.PasswordSyncGroups {
		if g.Name == name {
			return true
		}
	}
	return false
}

func writeProblem(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
