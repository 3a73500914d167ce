package policy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/transform"
)

func TestRenderIdentity(t *testing.T) {
	p := &Policy{Targets: map[string]Target{"okta": {Type: "okta"}}}
	step := SyncIdentity{Target: "okta", Attributes: map[string]string{
		"login": "{first_name | ASCII | LOWER}.{last_name | ASCII | LOWER}@example.com",
		"email": "{$target.login}",
	}}
	cjk := &transform.Env{Attrs: map[string]string{"employee_id": "10042", "first_name": "小明", "last_name": "王"}}

	// RenderAttributes renders what the templates say; RenderIdentity
	// refuses an identifier no account can have, naming person and attribute.
	attrs, err := RenderAttributes(p, step, cjk)
	require.NoError(t, err)
	assert.Equal(t, ".@example.com", attrs["login"])
	_, err = RenderIdentity(p, step, cjk)
	var idErr *IdentifierError
	require.ErrorAs(t, err, &idErr)
	assert.Equal(t, IdentifierError{EmployeeID: "10042", Target: "okta", Attribute: "login", Value: ".@example.com", Reason: idErr.Reason}, *idErr)
	assert.ErrorContains(t, err, `employee 10042: okta: unique identifier login renders ".@example.com": it has no letter or digit before @`)

	// A fallback formatter builds the login from the employee ID, and
	// attributes reading $target.login see it.
	step.Fallbacks = map[string][]string{"login": {
		"{first_name | ASCII | LOWER | FIRST_N, 1}{last_name | ASCII | LOWER | NEXT_NUMBER}@example.com",
		"e{employee_id}@example.com",
	}}
	attrs, err = RenderIdentity(p, step, cjk)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"login": "e10042@example.com", "email": "e10042@example.com"}, attrs)

	// A Latin name keeps its first choice.
	attrs, err = RenderIdentity(p, step, &transform.Env{Attrs: map[string]string{"employee_id": "7", "first_name": "Łukasz", "last_name": "Gruba"}})
	require.NoError(t, err)
	assert.Equal(t, "lukasz.gruba@example.com", attrs["login"])

	// Fallbacks that are no better still fail, with the first choice's reason.
	step.Fallbacks = map[string][]string{"login": {`{last_name}"@example.com`}}
	_, err = RenderIdentity(p, step, &transform.Env{Attrs: map[string]string{"employee_id": "8", "first_name": "Ann", "last_name": `O"Neil`}})
	require.ErrorAs(t, err, &idErr)
	assert.Equal(t, "8", idErr.EmployeeID)
	assert.ErrorContains(t, err, "contains a quote")
}
