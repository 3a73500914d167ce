package scimtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
)

// LoadUser is a user Load stores.
type LoadUser struct {
	UserName string `json:"userName"`
	Email    string `json:"email,omitempty"` // the primary work e-mail
	Active   bool   `json:"active"`
}

// LoadGroup is a group Load stores (or whose members it replaces).
type LoadGroup struct {
	DisplayName string   `json:"displayName"`
	Members     []string `json:"members"` // user names
}

// Loaded are the IDs Load assigned.
type Loaded struct {
	Users  map[string]string `json:"users"`  // userName → id
	Groups map[string]string `json:"groups"` // displayName → id
}

// Load stores users and groups in one uncounted request: a large
// population, or drift planted behind the client's back.
func (p *Peer) Load(users []LoadUser, groups []LoadGroup) Loaded {
	p.t.Helper()
	body, err := json.Marshal(map[string]any{"users": users, "groups": groups})
	if err != nil {
		p.t.Fatal(err)
	}
	req, err := http.NewRequest("POST", p.root+"/_peer/load", bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("scimtest: load: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("scimtest: load: HTTP %d: %s", resp.StatusCode, b)
	}
	var out Loaded
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		p.t.Fatalf("scimtest: load: %v", err)
	}
	return out
}
