package sources_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/policy"
)

// TestMeasureInitialHire measures how fast a poll delivers events: the
// first poll of a 200-person report hires everyone (JML_MEASURE=1).
func TestMeasureInitialHire(t *testing.T) {
	if os.Getenv("JML_MEASURE") != "1" {
		t.Skip("JML_MEASURE=1 to measure")
	}
	s := newStack(t)
	rep := newReport(t, "tok")
	s.env["TOK"] = "tok"
	s.pol = &policy.Policy{Targets: map[string]policy.Target{}, Sources: map[string]policy.Source{"hr": {
		Type: "report", URL: rep.srv.URL + "/r.csv", Every: "1h", EmployeeID: "{employee_id}",
		Auth: policy.Credential{Type: "bearer", TokenEnv: "TOK"}, Initial: policy.InitialBaseline}}}
	var people []person
	rep.set(csvOf(people))
	s.worker(t, nil)
	s.startPollers(t)
	for i := range 200 {
		people = append(people, person{fmt.Sprintf("E%04d", i), fmt.Sprintf("First%d", i), "Eng"})
	}
	rep.set(csvOf(people))
	start := time.Now()
	st := s.pollNow(t, "hr")
	d := time.Since(start)
	require.Equal(t, 200, st.Emitted["hire"], "%+v", st)
	t.Logf("poll of 200 new people: %v (%.1f events/s delivered)", d, 200/d.Seconds())
	start = time.Now()
	st = s.pollNow(t, "hr")
	t.Logf("poll of 200 unchanged people: %v", time.Since(start))
}
