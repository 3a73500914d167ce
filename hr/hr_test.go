package hr_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/hr"
	"github.com/jml-dev/jml/policy"
)

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantErr   string
		wantLine  int
		wantCol   int
		wantField string
		check     func(t *testing.T, ev hr.Event)
	}{
		{name: "full event", body: `{"event_id":"e1","type":"Hire","effective_at":"2026-12-01T09:00:00-05:00","employee":{"employee_id":"E1","first_name":" Ada ","badge":12345678901234567890,"remote":true,"empty":""}}`,
			check: func(t *testing.T, ev hr.Event) {
				assert.Equal(t, "hire", ev.Type)
				assert.Equal(t, "Ada", ev.Employee["first_name"])
				assert.Equal(t, "12345678901234567890", ev.Employee["badge"])
				assert.Equal(t, "true", ev.Employee["remote"])
				assert.NotContains(t, ev.Employee, "empty")
				assert.Equal(t, "api", ev.Source)
				assert.Equal(t, time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC), ev.EffectiveAt.UTC())
			}},
		{name: "derived id", body: `{"type":"terminate","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"E1"}}`,
			check: func(t *testing.T, ev hr.Event) { assert.Regexp(t, `^h-[0-9a-f]{24}$`, ev.EventID) }},
		{name: "syntax error position", body: "{\n  \"type\": \"hire\"\n  \"x\": 1}", wantErr: "malformed JSON", wantLine: 3, wantCol: 3},
		{name: "trailing data", body: `{"type":"hire"} {}`, wantErr: "unexpected data", wantLine: 1, wantCol: 17},
		{name: "empty body", body: ``, wantErr: "unexpected end", wantLine: 1, wantCol: 1},
		{name: "type error", body: `{"employee": []}`, wantErr: `field "employee"`, wantLine: 1, wantCol: 15},
		{name: "nested attribute", body: `{"employee": {"employee_id": "E1", "address": {"city": "Paris"}}}`, wantField: "employee.address"},
		{name: "zone-less time", body: `{"effective_at": "2026-12-01T09:00:00", "employee": {"employee_id": "E1"}}`, wantField: "effective_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := hr.ParseJSON([]byte(tc.body))
			switch {
			case tc.wantErr != "":
				var se *hr.SyntaxError
				require.True(t, errors.As(err, &se), "%v", err)
				assert.Contains(t, se.Error(), tc.wantErr)
				assert.Equal(t, [2]int{tc.wantLine, tc.wantCol}, [2]int{se.Line, se.Column}, se.Error())
			case tc.wantField != "":
				var ve *hr.ValidationError
				require.True(t, errors.As(err, &ve), "%v", err)
				assert.Equal(t, tc.wantField, ve.Fields[0].Field)
			default:
				require.NoError(t, err)
				tc.check(t, ev)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ok := func() hr.Event {
		return hr.Event{EventID: "e1", Type: hr.Hire, EffectiveAt: at,
			Employee: map[string]string{"employee_id": "E1", "first_name": "Ada", "last_name": "L"}}
	}
	// The list form: required for hire and rehire, the policy decides.
	pol := &policy.Policy{RequiredAttributes: policy.RequiredAttributes{List: []string{"employee_id", "first_name", "last_name"}}}
	tests := []struct {
		name   string
		mutate func(*hr.Event)
		fields []string
	}{
		{name: "valid", mutate: func(*hr.Event) {}},
		{name: "unknown type", mutate: func(e *hr.Event) { e.Type = "promote" }, fields: []string{"type"}},
		{name: "no type", mutate: func(e *hr.Event) { e.Type = "" }, fields: []string{"type"}},
		{name: "no time", mutate: func(e *hr.Event) { e.EffectiveAt = time.Time{} }, fields: []string{"effective_at"}},
		{name: "missing attribute", mutate: func(e *hr.Event) { delete(e.Employee, "last_name") }, fields: []string{"employee.last_name"}},
		{name: "blank attribute", mutate: func(e *hr.Event) { e.Employee["first_name"] = "  " }, fields: []string{"employee.first_name"}},
		{name: "terminate needs only the id", mutate: func(e *hr.Event) { e.Type = hr.Terminate; e.Employee = map[string]string{"employee_id": "E1"} }},
		{name: "id with slash", mutate: func(e *hr.Event) { e.Employee["employee_id"] = "a/b" }, fields: []string{"employee.employee_id"}},
		{name: "long event id", mutate: func(e *hr.Event) { e.EventID = string(make([]byte, 200)) }, fields: []string{"event_id"}},
		{name: "bad zone", mutate: func(e *hr.Event) { e.Employee["time_zone"] = "Mars/Olympus" }, fields: []string{"employee.time_zone"}},
		{name: "all at once", mutate: func(e *hr.Event) { e.Type = "x"; e.Employee = nil }, fields: []string{"type", "employee.employee_id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := ok()
			tc.mutate(&ev)
			err := ev.Validate(pol.RequiredFor(ev.Type))
			if len(tc.fields) == 0 {
				require.NoError(t, err)
				return
			}
			var ve *hr.ValidationError
			require.True(t, errors.As(err, &ve), "%v", err)
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
			}
			assert.Equal(t, tc.fields, got)
		})
	}
}

func TestDeriveIDIsContentBased(t *testing.T) {
	a := hr.Event{Type: hr.Hire, EffectiveAt: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), Employee: map[string]string{"employee_id": "E1", "a": "1", "b": "2"}}
	b := a
	b.EffectiveAt = a.EffectiveAt.In(time.FixedZone("X", 3600)) // same instant
	b.Employee = map[string]string{"b": "2", "employee_id": "E1", "a": "1"}
	assert.Equal(t, hr.DeriveID(a), hr.DeriveID(b))
	b.Employee["a"] = "3"
	assert.NotEqual(t, hr.DeriveID(a), hr.DeriveID(b))
}

func TestParseWorkday(t *testing.T) {
	body := `{"event":{"id":"BP-1","businessProcess":"Terminate Employee","effectiveDate":"2026-12-04"},
	  "worker":{"workerId":"21001","name":{"firstName":"Grace"},"location":{"timeZone":"America/New_York"}}}`
	evs, err := hr.ParseWorkday([]byte(body))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	ev := evs[0]
	assert.Equal(t, hr.Terminate, ev.Type)
	assert.Equal(t, "BP-1", ev.EventID)
	assert.Equal(t, "21001", ev.EmployeeID())
	assert.Equal(t, "workday", ev.Source)
	assert.Equal(t, "2026-12-04T05:00:00Z", ev.EffectiveAt.UTC().Format(time.RFC3339))
	assert.NotContains(t, ev.Employee, "email", "empty attributes are dropped")

	_, err = hr.ParseWorkday([]byte(`{"event":{"businessProcess":"Hire"},"worker":{"location":{"timeZone":"Nowhere"}}}`))
	var ve *hr.ValidationError
	require.True(t, errors.As(err, &ve))
	assert.Len(t, ve.Fields, 3) // workerId, timeZone, effectiveDate
}

func TestParseBambooHR(t *testing.T) {
	tests := []struct {
		entry    string
		wantType string
		wantAt   string
	}{
		{`{"id":1,"action":"Created","timestamp":"2026-11-22T08:58:00+0000","fields":{"Hire Date":"2026-12-01"}}`, hr.Hire, "2026-12-01T00:00:00Z"},
		{`{"id":"1","action":"Deleted","timestamp":"2026-11-22T08:58:00+0000"}`, hr.Terminate, "2026-11-22T08:58:00Z"},
		{`{"id":"1","action":"Updated","timestamp":"2026-11-22T08:58:00+0000","changedFields":["Employment Status"],"fields":{"employmentStatus":"Terminated","terminationDate":"2026-11-30"}}`, hr.Terminate, "2026-11-30T00:00:00Z"},
		{`{"id":"1","action":"Updated","timestamp":"2026-11-22T08:58:00+0000","changedFields":["status"],"fields":{"status":{"value":"Active"}}}`, hr.Rehire, "2026-11-22T08:58:00Z"},
		{`{"id":"1","action":"Updated","timestamp":"2026-11-22T08:58:00Z","changedFields":["Job Title"],"fields":{"Job Title":"CTO","Status":"Inactive"}}`, hr.Change, "2026-11-22T08:58:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.wantType, func(t *testing.T) {
			evs, err := hr.ParseBambooHR([]byte(`{"employees":[` + tc.entry + `]}`))
			require.NoError(t, err)
			require.Len(t, evs, 1)
			assert.Equal(t, tc.wantType, evs[0].Type)
			assert.Equal(t, tc.wantAt, evs[0].EffectiveAt.UTC().Format(time.RFC3339))
			assert.Equal(t, "1", evs[0].EmployeeID())
		})
	}
	evs, err := hr.ParseBambooHR([]byte(`{"employees":[{"id":"7","action":"Updated","timestamp":"2026-11-22T08:58:00+0000","fields":{"Work Email":"a@x.com","Reporting to":"Bob","Cost Center":"CC1","Employee #":"9"}}]}`))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"employee_id": "7", "email": "a@x.com", "manager_name": "Bob", "cost_center": "CC1", "employee_number": "9"}, evs[0].Employee)

	_, err = hr.ParseBambooHR([]byte(`{"employees":[{"id":"7","action":"Moved"}]}`))
	var ve *hr.ValidationError
	require.True(t, errors.As(err, &ve))
	assert.Equal(t, "employees[0].action", ve.Fields[0].Field)
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"Cost Center": "cost_center", "costCenter": "cost_center", "Employee #": "employee",
		"work_email": "work_email", " Start-Date ": "start_date", "ID": "id",
	} {
		assert.Equal(t, want, hr.SnakeCase(in), in)
	}
}

// FuzzParse checks that no body panics a parser and that every event a
// parser accepts has a usable event ID.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"type":"hire","effective_at":"2026-12-01T09:00:00Z","employee":{"employee_id":"E1"}}`))
	f.Add([]byte(`{"event":{"id":"BP","businessProcess":"Hire","effectiveDate":"2026-12-01"},"worker":{"workerId":"1"}}`))
	f.Add([]byte(`{"employees":[{"id":"1","action":"Updated","timestamp":"2026-11-22T08:58:00+0000","fields":{"a":{"value":1}}}]}`))
	f.Add([]byte("{\n\"x\": [1,}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		one := func(b []byte) ([]hr.Event, error) { ev, err := hr.ParseJSON(b); return []hr.Event{ev}, err }
		for _, parse := range []func([]byte) ([]hr.Event, error){one, hr.ParseWorkday, hr.ParseBambooHR} {
			evs, err := parse(body)
			if err != nil {
				continue
			}
			for _, ev := range evs {
				if ev.EventID == "" {
					t.Fatalf("accepted event without an ID: %+v", ev)
				}
				_ = ev.Validate(nil)
			}
		}
	})
}

func TestValidateRequiredByType(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	pol := &policy.Policy{RequiredAttributes: policy.RequiredAttributes{ByType: map[string][]string{
		hr.Hire: {"first_name"}, hr.Terminate: {"termination_reason"}}}}
	term := hr.Event{EventID: "e1", Type: hr.Terminate, EffectiveAt: at, Employee: map[string]string{"employee_id": "E1"}}
	var ve *hr.ValidationError
	require.ErrorAs(t, term.Validate(pol.RequiredFor(term.Type)), &ve)
	assert.Equal(t, "employee.termination_reason", ve.Fields[0].Field)
	term.Employee["termination_reason"] = "resigned"
	require.NoError(t, term.Validate(pol.RequiredFor(term.Type)))
	change := hr.Event{EventID: "e2", Type: hr.Change, EffectiveAt: at, Employee: map[string]string{"employee_id": "E1"}}
	require.NoError(t, change.Validate(pol.RequiredFor(change.Type)), "a type left out of the mapping requires nothing")
}
