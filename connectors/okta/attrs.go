package okta

import (
	"encoding/json"
	"strconv"
	"time"

	sdk "github.com/okta/okta-sdk-golang/v2/okta"

	"github.com/jml-dev/jml/connectors"
)

// standardAttrs maps normalized attribute names to Okta profile properties.
// Any other name is a custom profile attribute passed through as is.
var standardAttrs = [...]struct{ norm, profile string }{
	{"login", "login"},
	{"email", "email"},
	{"first_name", "firstName"},
	{"last_name", "lastName"},
	{"display_name", "displayName"},
	{"user_type", "userType"},
	{"department", "department"},
	{"title", "title"},
	{"manager", "manager"},
	{"manager_id", "managerId"},
	{"employee_id", "employeeNumber"},
	{"division", "division"},
	{"organization", "organization"},
	{"cost_center", "costCenter"},
	{"country_code", "countryCode"},
	{"second_email", "secondEmail"},
	{"nick_name", "nickName"},
}

// requiredAttrs must be present to create a user, in this order.
var requiredAttrs = [...]string{"login", "email", "first_name", "last_name"}

// ProfileName is the Okta profile property for a normalized attribute name.
func ProfileName(norm string) string {
	for _, a := range standardAttrs {
		if a.norm == norm {
			return a.profile
		}
	}
	return norm
}

func isStandard(norm string) bool {
	for _, a := range standardAttrs {
		if a.norm == norm {
			return true
		}
	}
	return false
}

// NormalizedName is the normalized attribute name for an Okta profile property.
func NormalizedName(profile string) string {
	for _, a := range standardAttrs {
		if a.profile == profile {
			return a.norm
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
	return out
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
