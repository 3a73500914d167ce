package entra

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jml-dev/jml/connectors"
)

type kind int

const (
	text kind = iota
	boolean
	date  // DateTimeOffset; "2026-12-01" means midnight UTC
	list  // comma-separated
	phone // a one-element collection (businessPhones)
)

// attribute maps a normalized attribute name to a Graph user property.
type attribute struct {
	name     string   // normalized snake_case name, as read back
	graph    string   // Graph property
	kind     kind     //
	aliases  []string // other accepted names (also read back, so diffs match)
	findable bool     // usable as a FindAccount key ($filter eq)
	required bool     // Graph refuses to clear it
	// lifecycle: reading and writing it need User-LifeCycleInfo
	// permissions; it is $selected only when the policy maps it.
	lifecycle bool
}

// attributes is the normalized ↔ Graph table (read-only).
var attributes = []attribute{
	{name: "user_principal_name", graph: "userPrincipalName", aliases: []string{"user_name"}, findable: true, required: true},
	{name: "display_name", graph: "displayName", findable: true, required: true},
	{name: "given_name", graph: "givenName", aliases: []string{"first_name"}},
	{name: "surname", graph: "surname", aliases: []string{"family_name", "last_name"}},
	{name: "mail", graph: "mail", aliases: []string{"email"}, findable: true},
	{name: "mail_nickname", graph: "mailNickname", findable: true, required: true},
	{name: "employee_id", graph: "employeeId", findable: true},
	{name: "employee_type", graph: "employeeType"},
	{name: "employee_hire_date", graph: "employeeHireDate", kind: date, lifecycle: true},
	{name: "department", graph: "department"},
	{name: "job_title", graph: "jobTitle", aliases: []string{"title"}},
	{name: "company_name", graph: "companyName"},
	{name: "office_location", graph: "officeLocation"},
	{name: "street_address", graph: "streetAddress"},
	{name: "city", graph: "city"},
	{name: "state", graph: "state"},
	{name: "postal_code", graph: "postalCode"},
	{name: "country", graph: "country"},
	{name: "usage_location", graph: "usageLocation"},
	{name: "preferred_language", graph: "preferredLanguage"},
	{name: "mobile_phone", graph: "mobilePhone"},
	{name: "business_phones", graph: "businessPhones", kind: phone, aliases: []string{"business_phone"}},
	{name: "other_mails", graph: "otherMails", kind: list},
	{name: "on_premises_immutable_id", graph: "onPremisesImmutableId", findable: true},
	{name: "account_enabled", graph: "accountEnabled", kind: boolean, aliases: []string{"active"}, required: true},
}

// Special attributes handled outside the property table.
const (
	attrManager   = "manager"    // manager's object ID or userPrincipalName (write); UPN (read)
	attrManagerID = "manager_id" // manager's object ID
	attrID        = "id"
)

func lookupAttribute(name string) (attribute, bool) {
	for _, a := range attributes {
		if a.name == name || slices.Contains(a.aliases, name) {
			return a, true
		}
	}
	return attribute{}, false
}

func knownNames() string {
	var names []string
	for _, a := range attributes {
		names = append(names, a.name)
	}
	return strings.Join(append(names, attrManager), ", ")
}

func invalidAttr(name, format string, args ...any) error {
	return connectors.Permanentf(TypeValidation, "entra: attribute %s: %s", name, fmt.Sprintf(format, args...))
}

// toGraph converts normalized attributes into a Graph body. With clear, an
// empty value becomes null (clear the property); otherwise it is omitted.
// The manager is returned apart: Graph sets it through /manager/$ref.
func toGraph(in map[string]string, clear bool) (body map[string]any, manager *string, err error) {
	body = map[string]any{}
	from := map[string]string{} // Graph property → the name it came from
	for name, v := range in {
		switch name {
		case attrManager, attrManagerID:
			v := strings.TrimSpace(v)
			manager = &v
			continue
		case "password":
			return nil, nil, invalidAttr(name, "passwords are set through CreateOptions.Password or SetPassword, never as attributes")
		}
		a, ok := lookupAttribute(name)
		if !ok {
			return nil, nil, invalidAttr(name, "unknown (known: %s)", knownNames())
		}
		if prev, dup := from[a.graph]; dup && in[prev] != v {
			return nil, nil, invalidAttr(name, "conflicts with %s", prev)
		}
		from[a.graph] = name
		if v == "" {
			if a.required && clear {
				return nil, nil, invalidAttr(name, "cannot be cleared")
			}
			if clear {
				body[a.graph] = nil
			}
			continue
		}
		gv, err := convert(a, v)
		if err != nil {
			return nil, nil, invalidAttr(name, "%v", err)
		}
		body[a.graph] = gv
	}
	return body, manager, nil
}

func convert(a attribute, v string) (any, error) {
	switch a.kind {
	case boolean:
		switch strings.ToLower(v) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("want true or false")
	case date:
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t.Format(time.RFC3339), nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, fmt.Errorf("want a date (2006-01-02) or an RFC 3339 time")
		}
		return t.UTC().Format(time.RFC3339), nil
	case phone:
		// "Although it's a string collection, only one number can be set
		// for this property."
		// https://learn.microsoft.com/en-us/graph/api/resources/user#properties
		if strings.ContainsAny(v, ",;") {
			return nil, fmt.Errorf("Entra keeps one business phone (Graph refuses a second number); map one number, and a second one to mobile_phone")
		}
		return []string{strings.TrimSpace(v)}, nil
	case list:
		var out []string
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	switch a.graph {
	case "usageLocation":
		u := strings.ToUpper(v)
		if len(u) != 2 || u[0] < 'A' || u[0] > 'Z' || u[1] < 'A' || u[1] > 'Z' {
			return nil, fmt.Errorf("want a two-letter ISO 3166 country code")
		}
		return u, nil
	case "mailNickname":
		if v != mailNickname(v) || len(v) > 64 {
			return nil, fmt.Errorf("want up to 64 ASCII characters without spaces or @()\\[]\";:<>,")
		}
	}
	return v, nil
}

// fromGraph reads a Graph user into normalized attributes, under the
// canonical name and every alias.
func fromGraph(props map[string]any) connectors.Attributes {
	out := connectors.Attributes{}
	for _, a := range attributes {
		v, ok := props[a.graph]
		if !ok || v == nil {
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
			if a.kind == date {
				if t, err := time.Parse(time.RFC3339, x); err == nil {
					t = t.UTC()
					if t.Equal(t.Truncate(24 * time.Hour)) {
						s = t.Format(time.DateOnly)
					} else {
						s = t.Format(time.RFC3339)
					}
				}
			}
		case bool:
			s = fmt.Sprint(x)
		case []any:
			var parts []string
			for _, e := range x {
				parts = append(parts, fmt.Sprint(e))
			}
			s = strings.Join(parts, ",")
		default:
			s = fmt.Sprint(x)
		}
		if s == "" {
			continue
		}
		out[a.name] = s
		for _, al := range a.aliases {
			out[al] = s
		}
	}
	if m, ok := props["manager"].(map[string]any); ok {
		out[attrManagerID], _ = m["id"].(string)
		out[attrManager], _ = m["userPrincipalName"].(string)
	}
	// A delta read carries the manager's ID only (ListChanges).
	if ms, ok := props["manager@delta"].([]any); ok && len(ms) > 0 {
		if m, ok := ms[0].(map[string]any); ok && m["@removed"] == nil {
			if id, _ := m["id"].(string); id != "" {
				out[attrManagerID] = id
			}
		}
	}
	return out
}

// selectUser is the $select of every property in the table; lifecycle
// dates only with lifecycle (they cost a permission).
func selectUser(lifecycle bool) string {
	names := []string{"id"}
	for _, a := range attributes {
		if !a.lifecycle || lifecycle {
			names = append(names, a.graph)
		}
	}
	return strings.Join(names, ",")
}

// mailNickname keeps the characters Graph allows in a mail alias.
func mailNickname(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 32 && r < 127 && !strings.ContainsRune(`@()\[]";:<>,`, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isGUID reports whether s looks like a directory object ID.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}
