package okta

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/jml-dev/jml/connectors"
)

// catalog is the Okta attribute catalog: normalized names of the standard
// profile properties, their aliases, and which are required. Any other name
// is a custom profile attribute passed through as is.
var catalog = []connectors.AttributeSpec{
	{Name: "login", Wire: "login", Required: true, Immutable: true},
	{Name: "email", Wire: "email", Required: true},
	{Name: "first_name", Wire: "firstName", Aliases: []string{"given_name"}, Required: true},
	{Name: "last_name", Wire: "lastName", Aliases: []string{"family_name"}, Required: true},
	{Name: "middle_name", Wire: "middleName"},
	{Name: "honorific_prefix", Wire: "honorificPrefix"},
	{Name: "honorific_suffix", Wire: "honorificSuffix"},
	{Name: "display_name", Wire: "displayName"},
	{Name: "nick_name", Wire: "nickName"},
	{Name: "profile_url", Wire: "profileUrl"},
	{Name: "second_email", Wire: "secondEmail"},
	{Name: "mobile_phone", Wire: "mobilePhone"},
	{Name: "primary_phone", Wire: "primaryPhone"},
	{Name: "street_address", Wire: "streetAddress"},
	{Name: "city", Wire: "city"},
	{Name: "state", Wire: "state"},
	{Name: "zip_code", Wire: "zipCode", Aliases: []string{"postal_code"}},
	{Name: "country_code", Wire: "countryCode"},
	{Name: "postal_address", Wire: "postalAddress"},
	{Name: "preferred_language", Wire: "preferredLanguage"},
	{Name: "locale", Wire: "locale"},
	{Name: "timezone", Wire: "timezone", Aliases: []string{"time_zone"}},
	{Name: "user_type", Wire: "userType"},
	{Name: "title", Wire: "title"},
	{Name: "department", Wire: "department"},
	{Name: "division", Wire: "division"},
	{Name: "organization", Wire: "organization"},
	{Name: "cost_center", Wire: "costCenter"},
	{Name: "employee_id", Wire: "employeeNumber", Aliases: []string{"employee_number"}},
	{Name: "manager", Wire: "manager"},
	{Name: "manager_id", Wire: "managerId"},
}

func standard(norm string) (connectors.AttributeSpec, bool) {
	for _, a := range catalog {
		if a.Name == norm || slices.Contains(a.Aliases, norm) {
			return a, true
		}
	}
	return connectors.AttributeSpec{}, false
}

// ProfileName is the Okta profile property for a normalized attribute name
// (or one of its aliases).
func ProfileName(norm string) string {
	if a, ok := standard(norm); ok {
		return a.Wire
	}
	return norm
}

func isStandard(norm string) bool {
	_, ok := standard(norm)
	return ok
}

// canonical is the catalog's name for norm (first_name for given_name).
func canonical(norm string) string {
	if a, ok := standard(norm); ok {
		return a.Name
	}
	return norm
}

// NormalizedName is the normalized attribute name for an Okta profile property.
func NormalizedName(profile string) string {
	for _, a := range catalog {
		if a.Wire == profile {
			return a.Name
		}
	}
	return profile
}

func toProfile(a connectors.Attributes) sdk.UserProfile {
	p := sdk.UserProfile{}
	for k, v := range a {
		if v != "" {
			p[ProfileName(k)] = v
		}
	}
	return p
}

func fromProfile(p *sdk.UserProfile) connectors.Attributes {
	out := connectors.Attributes{}
	if p == nil {
		return out
	}
	for k, v := range *p {
		if s, ok := profileValue(v); ok {
			out[NormalizedName(k)] = s
		}
	}
	return Describe().WithAliases(out)
}

// profileValue renders a profile value as an attribute string; arrays and
// objects keep their JSON form.
func profileValue(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case string:
		return v, v != ""
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	default:
		b, err := json.Marshal(v)
		return string(b), err == nil
	}
}

// active reports whether a user can sign in (or will, once activated).
func active(status string) bool {
	switch status {
	case "STAGED", "SUSPENDED", "DEPROVISIONED":
		return false
	}
	return true
}

func toAccount(u *sdk.User) *connectors.Account {
	return &connectors.Account{ID: u.Id, Active: active(u.Status), Status: u.Status, Attributes: fromProfile(u.Profile)}
}

func toIdentity(u *sdk.User) connectors.Identity {
	attrs := fromProfile(u.Profile)
	id := connectors.Identity{EmployeeID: attrs["employee_id"], Attributes: attrs, Active: active(u.Status)}
	if u.LastUpdated != nil {
		id.UpdatedAt = u.LastUpdated.UTC()
	}
	return id
}

// oktaTime is the timestamp form Okta filters take.
func oktaTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// requiredAttrs must be present to create a user, in catalog order.
func requiredAttrs() []string {
	var out []string
	for _, a := range catalog {
		if a.Required {
			out = append(out, a.Name)
		}
	}
	return out
}

// normalize renames aliases to the catalog's names.
func normalize(a connectors.Attributes) connectors.Attributes { return Describe().Normalize(a) }
