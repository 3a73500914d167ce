package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jml-dev/jml/audit"
	"github.com/jml-dev/jml/policy"
)

// sendRESTRequest is send_rest_request (SEND_REST_REQUEST): one HTTP
// request (connectors/rest), its outputs extracted from the answer.
type sendRESTRequest struct{}

func (sendRESTRequest) Name() string                       { return policy.ActionSendRESTRequest }
func (sendRESTRequest) Activity(a *Activities) any         { return a.SendRESTRequest }
func (sendRESTRequest) Traits() Traits                     { return Traits{} }
func (sendRESTRequest) Supports(any) bool                  { return true } // sends its own requests
func (sendRESTRequest) Needs(policy.Step, string) []string { return nil }
func (sendRESTRequest) plan(*PlannedStep) error            { return nil }

func (sendRESTRequest) sources(p *policy.Policy, s policy.Step) (string, []string) {
	return requestSources(p, s.SendRESTRequest)
}

func (sendRESTRequest) secret(s policy.Step) bool { return requestSecret(s.SendRESTRequest) }

func (sendRESTRequest) does(s policy.Step, _ string) string { return requestDoes(s.SendRESTRequest) }

func (sendRESTRequest) Effects(_ *Person, ps policy.PlannedStep) ([]Effect, error) {
	return []Effect{{Kind: EffectOther, Note: ps.Action}}, nil
}

// requestSources are the templates of a REST request or notification and
// the entity type its extracted outputs are recorded under.
func requestSources(p *policy.Policy, r *policy.RESTRequest) (produces string, srcs []string) {
	if len(r.Extract) > 0 && r.Target != "" {
		produces = p.EntityType(r.Target)
	}
	srcs = append(srcs, r.URL, r.Body)
	for _, k := range slices.Sorted(maps.Keys(r.Headers)) {
		srcs = append(srcs, r.Headers[k])
	}
	return produces, append(srcs, notifySources(r)...)
}

// requestSecret: the request reads a secret (an unparsable template fails
// in the step, with the vault at hand).
func requestSecret(r *policy.RESTRequest) bool {
	refs, err := secretRefs(r)
	return err != nil || len(refs) > 0
}

// requestDoes is "METHOD url (target)", the URL unrendered.
func requestDoes(r *policy.RESTRequest) string {
	m := strings.ToUpper(r.Method)
	if m == "" {
		m = "POST"
	}
	u := r.URL
	if r.URLEnv != "" {
		u = "$" + r.URLEnv
	}
	if len(u) > 80 {
		u = u[:77] + "…"
	}
	return m + " " + u + paren(r.Target)
}

// SendRESTRequest is SEND_REST_REQUEST (connectors/rest). Secret
// references ({OktaUser.password}) resolve from the vault; a handle lost
// with its worker makes the step set a new password on the account and
// send that one.
func (a *Activities) SendRESTRequest(ctx context.Context, in StepInput) (StepResult, error) {
	spec := in.Step.Spec.SendRESTRequest
	if spec == nil {
		return StepResult{}, permanent("PolicyInvalid", errors.New("not a send_rest_request step"))
	}
	req, res, err := a.restRequest(ctx, in, spec)
	if err != nil {
		return StepResult{}, err
	}
	out, err := a.rest.Send(ctx, req)
	if err != nil {
		return StepResult{}, toTemporal(fmt.Errorf("%s: %w", in.Step.Name, err), req.Secrets...)
	}
	res.Outputs = out
	if res.Note == "" {
		res.Note = "sent"
	}
	res.Effects = deliveryEffects(audit.RequestSent, "https", requestDoes(spec), len(req.Secrets) > 0)
	return res, nil
}
