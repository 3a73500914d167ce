package ldappeer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/internal/ldappeer"
)

// The bulk loads a reconciliation proof starts from: 1,000 users read back
// in pages. The time is printed, not asserted.
func TestLoadUsers(t *testing.T) {
	t.Parallel()
	const n = 1000
	users := ldappeer.GenerateUsers(n)

	t.Run("samba", func(t *testing.T) {
		t.Parallel()
		s := ldappeer.StartSamba(t)
		start := time.Now()
		dns := s.LoadUsers(t, s.StaffDN, users)
		t.Logf("Samba AD DC: %d users added in %s", len(dns), time.Since(start).Round(time.Millisecond))
		got := s.SearchAll(t, s.StaffDN, "(&(objectClass=user)(employeeID=B*))", "employeeID", "sAMAccountName")
		require.Len(t, got, n)
	})
	t.Run("slapd", func(t *testing.T) {
		t.Parallel()
		s := ldappeer.StartSlapd(t)
		start := time.Now()
		dns := s.LoadUsers(t, s.StaffDN, users)
		t.Logf("OpenLDAP: %d users added in %s", len(dns), time.Since(start).Round(time.Millisecond))
		got := s.SearchAll(t, s.StaffDN, "(&(objectClass=inetOrgPerson)(employeeNumber=B*))", "employeeNumber", "uid")
		require.Len(t, got, n)
	})
}

func TestLoadUsersWithPasswordsBind(t *testing.T) {
	t.Parallel()
	users := ldappeer.GenerateUsers(2)
	for i := range users {
		users[i].Password = "Bulk-Password-42"
	}
	users[1].Disabled = true

	s := ldappeer.StartSamba(t)
	s.LoadUsers(t, s.StaffDN, users)
	require.NoError(t, s.Bind(users[0].Login+"@jml.test", users[0].Password))
	require.Error(t, s.Bind(users[1].Login+"@jml.test", users[1].Password), "Disabled")

	o := ldappeer.StartSlapd(t)
	dns := o.LoadUsers(t, o.StaffDN, users)
	require.NoError(t, o.Bind(dns[0], users[0].Password))
}
