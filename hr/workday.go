package hr

import (
	"strings"
	"time"
)

// workdayEvent is the Workday-style body: a completed business process and
// the worker it applies to, as a Workday Studio or Integration Cloud
// outbound message posts it (field names follow Workday's REST API).
type workdayEvent struct {
	Event struct {
		ID              string `json:"id"`
		BusinessProcess string `json:"businessProcess"`
		EffectiveDate   string `json:"effectiveDate"`
	} `json:"event"`
	Worker struct {
		WorkerID string `json:"workerId"`
		Name     struct {
			FirstName     string `json:"firstName"`
			LastName      string `json:"lastName"`
			PreferredName string `json:"preferredName"`
		} `json:"name"`
		Email                   string `json:"primaryWorkEmail"`
		BusinessTitle           string `json:"businessTitle"`
		SupervisoryOrganization string `json:"supervisoryOrganization"`
		CostCenter              string `json:"costCenter"`
		ManagerID               string `json:"managerWorkerId"`
		WorkerType              string `json:"workerType"`
		Location                struct {
			Name        string `json:"name"`
			CountryCode string `json:"countryCode"`
			TimeZone    string `json:"timeZone"`
		} `json:"location"`
	} `json:"worker"`
}

// workdayTypes maps Workday business process types to event types.
var workdayTypes = map[string]string{
	"hire":                            Hire,
	"hire employee":                   Hire,
	"contract contingent worker":      Hire,
	"change job":                      Change,
	"transfer":                        Change,
	"promote":                         Change,
	"demote":                          Change,
	"change organization assignments": Change,
	"change business title":           Change,
	"change legal name":               Change,
	"change preferred name":           Change,
	"change work contact information": Change,
	"edit position":                   Change,
	"termination":                     Terminate,
	"terminate employee":              Terminate,
	"end contingent worker contract":  Terminate,
	"rehire":                          Rehire,
	"rehire employee":                 Rehire,
}

// ParseWorkday maps a Workday-style business process message to an event.
// Errors name the fields of the Workday body. A date-only effectiveDate is
// midnight in the worker's location time zone (UTC when it has none).
func ParseWorkday(body []byte) ([]Event, error) {
	var w workdayEvent
	if err := decodeStrict(body, &w); err != nil {
		return nil, err
	}
	var v ValidationError
	typ, ok := workdayTypes[strings.ToLower(strings.TrimSpace(w.Event.BusinessProcess))]
	if !ok {
		if w.Event.BusinessProcess == "" {
			v.add("event.businessProcess", "required")
		} else {
			v.add("event.businessProcess", "unsupported business process %q (see docs/intake.md for the mapped ones)", w.Event.BusinessProcess)
		}
	}
	if w.Worker.WorkerID == "" {
		v.add("worker.workerId", "required")
	}
	loc := time.UTC
	if tz := w.Worker.Location.TimeZone; tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			v.add("worker.location.timeZone", "unknown IANA time zone %q", tz)
		} else {
			loc = l
		}
	}
	var at time.Time
	if w.Event.EffectiveDate == "" {
		v.add("event.effectiveDate", "required")
	} else if t, err := ParseTime(w.Event.EffectiveDate, loc); err != nil {
		v.add("event.effectiveDate", "%v", err)
	} else {
		at = t
	}
	if len(v.Fields) > 0 {
		return nil, &v
	}
	wk := w.Worker
	ev := Event{
		EventID:     w.Event.ID,
		Type:        typ,
		EffectiveAt: at,
		Source:      "workday",
		Employee: map[string]string{
			"employee_id":    wk.WorkerID,
			"first_name":     wk.Name.FirstName,
			"last_name":      wk.Name.LastName,
			"preferred_name": wk.Name.PreferredName,
			"email":          wk.Email,
			"title":          wk.BusinessTitle,
			"department":     wk.SupervisoryOrganization,
			"cost_center":    wk.CostCenter,
			"manager_id":     wk.ManagerID,
			"worker_type":    wk.WorkerType,
			"location":       wk.Location.Name,
			"country_code":   wk.Location.CountryCode,
			"time_zone":      wk.Location.TimeZone,
		},
	}
	ev.Normalize()
	return []Event{ev}, nil
}
