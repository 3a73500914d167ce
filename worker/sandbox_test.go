package main

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jml-dev/jml/policy"
	"github.com/jml-dev/jml/sandbox"
)

func TestPointPolicyAtFollowsTheSandbox(t *testing.T) {
	pol := &policy.Policy{Targets: map[string]policy.Target{
		"sandbox":  {Type: "scim", BaseURL: "http://127.0.0.1:8090/scim/v2"},
		"hrportal": {Type: "rest", BaseURL: "https://127.0.0.1:8443/api"},
		"bare":     {Type: "rest", BaseURL: "https://127.0.0.1:8443"},
		"other":    {Type: "scim", BaseURL: "http://127.0.0.1:80901/scim/v2"},
		"okta":     {Type: "okta", OrgURL: "https://acme.okta.com"},
	}}
	pointPolicyAt(pol, &sandbox.Sandbox{SCIMURL: "http://127.0.0.1:5001/scim/v2", HRPortalURL: "https://127.0.0.1:5002/api"})
	assert.Equal(t, "http://127.0.0.1:5001/scim/v2", pol.Targets["sandbox"].BaseURL)
	assert.Equal(t, "https://127.0.0.1:5002/api", pol.Targets["hrportal"].BaseURL)
	assert.Equal(t, "https://127.0.0.1:5002", pol.Targets["bare"].BaseURL)
	assert.Equal(t, "http://127.0.0.1:80901/scim/v2", pol.Targets["other"].BaseURL, "another port is another server")
	assert.Equal(t, "https://acme.okta.com", pol.Targets["okta"].OrgURL)
}

func TestPickAddr(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	freeAddr := free.Addr().String()
	require.NoError(t, free.Close())

	addr, moved := pickAddr("", busy.Addr().String())
	assert.Equal(t, "127.0.0.1:0", addr, "a busy default moves to a free port")
	assert.True(t, moved)
	addr, moved = pickAddr("", freeAddr)
	assert.Equal(t, freeAddr, addr)
	assert.False(t, moved)
	addr, moved = pickAddr(busy.Addr().String(), "127.0.0.1:8090")
	assert.Equal(t, busy.Addr().String(), addr, "an address the operator chose is kept, busy or not")
	assert.False(t, moved)
}
