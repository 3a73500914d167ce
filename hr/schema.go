package hr

import (
	"maps"
	"slices"
)

// Attributes are the employee attributes jml's HR parsers produce (the
// generic JSON and CSV intake takes any snake_case name; these are the
// ones Workday and BambooHR map to, and the ones jml itself reads). The
// policy checks the names its conditions and templates read against
// them, its required_attributes and its mappers (import columns, source
// attributes).
func Attributes() []string {
	set := map[string]bool{}
	// ParseWorkday's, then the common fields of HR systems jml documents
	// (docs/intake.md).
	for _, a := range []string{"employee_id", "first_name", "last_name", "preferred_name", "email", "title",
		"department", "cost_center", "manager_id", "worker_type", "location", "country_code", "time_zone",
		"start_date", "end_date", "personal_email", "employee_type", "company", "office", "team", "level",
		"locale", "display_name", "phone"} {
		set[a] = true
	}
	for _, a := range bambooFields {
		set[a] = true
	}
	return slices.Sorted(maps.Keys(set))
}
