package hr

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
)

// bambooBody is a BambooHR field-based ("global") webhook body: one entry
// per changed employee. Field values are plain strings, or {"value": …}
// objects in some account configurations.
type bambooBody struct {
	Employees []struct {
		ID            json.RawMessage            `json:"id"`
		Action        string                     `json:"action"`
		Timestamp     string                     `json:"timestamp"`
		ChangedFields []string                   `json:"changedFields"`
		Fields        map[string]json.RawMessage `json:"fields"`
	} `json:"employees"`
}

// bambooFields maps BambooHR field names — English labels or API aliases,
// compared lower-case without spaces or punctuation — to attribute names.
// Other fields keep their name in snake_case.
var bambooFields = map[string]string{
	"firstname":        "first_name",
	"lastname":         "last_name",
	"middlename":       "middle_name",
	"preferredname":    "preferred_name",
	"workemail":        "email",
	"email":            "email",
	"department":       "department",
	"division":         "division",
	"jobtitle":         "title",
	"location":         "location",
	"country":          "country",
	"reportingto":      "manager_name",
	"supervisoreid":    "manager_id",
	"supervisorid":     "manager_id",
	"employee":         "employee_number", // "Employee #"
	"employeenumber":   "employee_number",
	"hiredate":         "hire_date",
	"terminationdate":  "termination_date",
	"status":           "status",
	"employmentstatus": "employment_status",
	"workphone":        "work_phone",
	"mobilephone":      "mobile_phone",
}

// bambooTimestamp is BambooHR's timestamp layout (2026-01-31T18:42:00+0000).
const bambooTimestamp = "2006-01-02T15:04:05-0700"

// ParseBambooHR maps a BambooHR field-based webhook body to one event per
// employee entry. Created is a hire (effective on the Hire Date), Deleted a
// termination; Updated is a termination when Status became Inactive or
// Employment Status became Terminated (effective on the Termination Date), a
// rehire when Status became Active, and a change otherwise (effective at the
// webhook timestamp). Dates without a zone are taken in UTC.
func ParseBambooHR(body []byte) ([]Event, error) {
	var b bambooBody
	if err := decodeStrict(body, &b); err != nil {
		return nil, err
	}
	var v ValidationError
	if len(b.Employees) == 0 {
		v.add("employees", "required: at least one employee entry")
		return nil, &v
	}
	events := make([]Event, 0, len(b.Employees))
	for i, e := range b.Employees {
		path := fmt.Sprintf("employees[%d]", i)
		attrs := map[string]string{}
		id, err := scalar(e.ID)
		if len(e.ID) == 0 || err != nil || id == "" {
			v.add(path+".id", "required")
		}
		attrs["employee_id"] = id
		for name, raw := range e.Fields {
			val, err := bambooValue(raw)
			if err != nil {
				v.add(path+".fields."+name, "%v", err)
				continue
			}
			attrs[bambooAttr(name)] = val
		}
		changed := func(attr string) bool {
			return slices.ContainsFunc(e.ChangedFields, func(f string) bool { return bambooAttr(f) == attr })
		}
		var typ, dateAttr string
		switch strings.ToLower(e.Action) {
		case "created":
			typ, dateAttr = Hire, "hire_date"
		case "deleted":
			typ, dateAttr = Terminate, "termination_date"
		case "updated":
			switch {
			case changed("status") && strings.EqualFold(attrs["status"], "inactive"),
				changed("employment_status") && strings.EqualFold(attrs["employment_status"], "terminated"):
				typ, dateAttr = Terminate, "termination_date"
			case changed("status") && strings.EqualFold(attrs["status"], "active"):
				typ, dateAttr = Rehire, "hire_date"
			default:
				typ = Change
			}
		case "":
			v.add(path+".action", "required (Created, Updated or Deleted)")
		default:
			v.add(path+".action", "unknown action %q (want Created, Updated or Deleted)", e.Action)
		}
		at, err := bambooTime(e.Timestamp, attrs[dateAttr])
		if err != nil {
			v.add(path+".timestamp", "%v", err)
		}
		ev := Event{Type: typ, EffectiveAt: at, Employee: attrs, Source: "bamboohr"}
		ev.Normalize()
		events = append(events, ev)
	}
	if len(v.Fields) > 0 {
		return nil, &v
	}
	return events, nil
}

// bambooTime is the effective time: the given date (midnight UTC) when the
// payload carries one, else the webhook timestamp.
func bambooTime(timestamp, date string) (time.Time, error) {
	if date != "" {
		if t, err := ParseTime(date, time.UTC); err == nil {
			return t, nil
		}
	}
	if timestamp == "" {
		return time.Time{}, fmt.Errorf("required when the entry has no effective date field")
	}
	if t, err := time.Parse(bambooTimestamp, timestamp); err == nil {
		return t, nil
	}
	return ParseTime(timestamp, nil)
}

func bambooValue(raw json.RawMessage) (string, error) {
	var obj struct {
		Value json.RawMessage `json:"value"`
	}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", err
		}
		raw = obj.Value
		if len(raw) == 0 {
			return "", nil
		}
	}
	return scalar(raw)
}

// bambooAttr maps a BambooHR field name to an attribute name.
func bambooAttr(name string) string {
	var key strings.Builder
	for _, r := range strings.ToLower(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			key.WriteRune(r)
		}
	}
	if attr, ok := bambooFields[key.String()]; ok {
		return attr
	}
	return SnakeCase(name)
}

// SnakeCase turns a column or field label ("Cost Center", "costCenter") into
// an attribute name ("cost_center").
func SnakeCase(s string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range strings.TrimSpace(s) {
		switch {
		case unicode.IsUpper(r):
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLower = false
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
			prevLower = true
		default:
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			prevLower = false
		}
	}
	return strings.Trim(b.String(), "_")
}
