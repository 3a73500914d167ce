package scim

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/connectors"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:          `"plain"`,
		`o"brien`:        `"o\"brien"`,
		`back\slash`:     `"back\\slash"`,
		"tab\there":      `"tab\u0009here"`,
		`x" or id pr "`:  `"x\" or id pr \""`,
		"unicodé ☃":      `"unicodé ☃"`,
		`<html>&amp;`:    `"<html>&amp;"`,
		`\"`:             `"\\\""`,
		"":               `""`,
		"line\nbreak\r!": `"line\u000abreak\u000d!"`,
	} {
		got := quote(in)
		assert.Equal(t, want, got, in)
		var back string
		require.NoError(t, json.Unmarshal([]byte(got), &back), "a JSON string literal")
		assert.Equal(t, in, back)
	}
}

func TestNames(t *testing.T) {
	assert.Equal(t, "urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_department",
		normalize(enterpriseURN+":department"))
	assert.Equal(t, "urn_scim_schemas_extension_myvendor_1_0_customfield", normalize("urn:scim:schemas:extension:myvendor:1.0:customField"))
	assert.Equal(t, "ref", normalize("$ref"))
	for s, c := range map[string]string{"user_name": "userName", "preferred_language": "preferredLanguage", "title": "title"} {
		assert.Equal(t, c, camel(s))
		assert.Equal(t, s, snake(c))
	}
}

func TestResolve(t *testing.T) {
	ix := newSchemaIndex(rfcSchemas())
	for _, tc := range []struct {
		name, path string
	}{
		{"user_name", "userName"},
		{"external_id", "externalId"},
		{"active", "active"},
		{"given_name", "name.givenName"},
		{"formatted_name", "name.formatted"},
		{"email", `emails[type eq "work"].value`},
		{"emails.home", `emails[type eq "home"].value`},
		{"phone_numbers.mobile", `phoneNumbers[type eq "mobile"].value`},
		{"addresses.work.postal_code", `addresses[type eq "work"].postalCode`},
		{"department", enterpriseURN + ":department"},
		{"urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_costcenter", enterpriseURN + ":costCenter"},
		{"urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_cost_center", enterpriseURN + ":costCenter"},
		{"manager", enterpriseURN + ":manager.value"},
		{"urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_manager", enterpriseURN + ":manager.value"},
	} {
		got, err := ix.resolve(tc.name)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.path, got.path(), tc.name)
	}
	for _, bad := range []string{"groups", "password", "id", "shoe_size", "emails.", "faxes.work", "addresses.work.planet",
		"urn_ietf_params_scim_schemas_extension_enterprise_2_0_user_manager_displayname"} {
		_, err := ix.resolve(bad)
		require.Error(t, err, bad)
		assert.True(t, connectors.IsPermanent(err), bad)
		assert.Contains(t, err.Error(), bad)
	}
}

func TestPatchOps(t *testing.T) {
	ix := newSchemaIndex(rfcSchemas())
	cur := resource{"emails": []any{map[string]any{"type": "work", "value": "a@x", "primary": true}, map[string]any{"type": "home", "value": "h@x"}}}
	plan, err := ix.plan(map[string]string{
		"title": "T", "locale": "", "email": "b@x", "emails.home": "", "emails.other": "o@x",
		"addresses.work.locality": "Lyon", "addresses.work.country": "FR", "manager": "m1", "department": "",
	})
	require.NoError(t, err)
	got, err := json.Marshal(patchOps(plan, cur))
	require.NoError(t, err)
	assert.JSONEq(t, `[
		{"op":"remove","path":"`+enterpriseURN+`:department"},
		{"op":"replace","path":"emails[type eq \"work\"].value","value":"b@x"},
		{"op":"remove","path":"emails[type eq \"home\"]"},
		{"op":"remove","path":"locale"},
		{"op":"add","value":{"`+enterpriseURN+`":{"manager":{"value":"m1"}}}},
		{"op":"replace","path":"title","value":"T"},
		{"op":"add","path":"addresses","value":[{"type":"work","locality":"Lyon","country":"FR"}]},
		{"op":"add","path":"emails","value":[{"type":"other","value":"o@x"}]}
	]`, string(got))
}

func TestClassify(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		status             int
		header             http.Header
		body               string
		typ                string // PermanentError type
		notFound, conflict bool
		retryAfter         time.Duration
		transient          bool
	}{
		{status: 404, body: `{"detail":"Resource 1 not found"}`, notFound: true},
		{status: 409, body: `{"scimType":"uniqueness","detail":"taken"}`, typ: "ScimConflict", conflict: true},
		{status: 400, body: `{"scimType":"invalidValue","detail":"bad"}`, typ: "ScimValidation"},
		{status: 401, typ: "ScimAuth"},
		{status: 403, body: `{"detail":"scope"}`, typ: "ScimAuth"},
		{status: 412, typ: "ScimPrecondition"},
		{status: 405, typ: "ScimRequest"},
		{status: 501, typ: "ScimUnsupported"},
		{status: 429, header: http.Header{"Retry-After": {"12"}}, retryAfter: 12 * time.Second},
		{status: 429, header: http.Header{"Retry-After": {now.Add(time.Minute).UTC().Format(http.TimeFormat)}}, retryAfter: time.Minute},
		{status: 429, retryAfter: connectors.DefaultRetryAfter},
		{status: 503, header: http.Header{"Retry-After": {"3"}}, retryAfter: 3 * time.Second},
		{status: 503, transient: true},
		{status: 502, body: "<html>bad gateway</html>", transient: true},
		{status: 408, transient: true},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: tc.header}
		if resp.Header == nil {
			resp.Header = http.Header{}
		}
		err := classify("op", resp, []byte(tc.body), "")
		require.Error(t, err)
		var perm *connectors.PermanentError
		if tc.typ != "" {
			require.ErrorAs(t, err, &perm, tc.status)
			assert.Equal(t, tc.typ, perm.Type)
		} else {
			assert.False(t, connectors.IsPermanent(err), tc.status)
		}
		assert.Equal(t, tc.notFound, errors.Is(err, connectors.ErrNotFound), tc.status)
		assert.Equal(t, tc.conflict, errors.Is(err, connectors.ErrConflict), tc.status)
		var rl *connectors.RateLimitedError
		if tc.retryAfter > 0 {
			require.ErrorAs(t, err, &rl, tc.status)
			assert.InDelta(t, tc.retryAfter.Seconds(), rl.RetryAfter.Seconds(), 1)
		}
		var tr *connectors.TransientError
		assert.Equal(t, tc.transient, errors.As(err, &tr), tc.status)
	}

	err := classify("set password", &http.Response{StatusCode: 400, Header: http.Header{}},
		[]byte(`{"detail":"password 'Hunter2!' is too weak"}`), "Hunter2!")
	assert.NotContains(t, err.Error(), "Hunter2!")
	assert.Contains(t, err.Error(), "too weak")
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", `o"brien`, `\`, "\x00", "x\" or userName pr or \"", "ünï"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		var back string
		if err := json.Unmarshal([]byte(quote(s)), &back); err != nil {
			t.Fatalf("quote(%q) = %s: not a JSON string: %v", s, quote(s), err)
		}
		if back != s {
			t.Fatalf("quote(%q) decodes to %q", s, back)
		}
	})
}
