package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jml-dev/jml/secret"
)

// Handoff records that a joiner's password handoff arrived. It never holds
// the password: only its length and whether the directory accepts it.
type Handoff struct {
	EmployeeID       string    `json:"employee_id"`
	Login            string    `json:"login"`
	PasswordLength   int       `json:"password_length"`
	PasswordAccepted bool      `json:"password_accepted"`
	Deliveries       int       `json:"deliveries"`
	ReceivedAt       time.Time `json:"received_at"`
	ClosedAt         time.Time `json:"closed_at,omitzero"`
}

// Notification is a notify call the portal received.
type Notification struct {
	Text       string    `json:"text"`
	ReceivedAt time.Time `json:"received_at"`
}

// HRPortalConfig configures the HR portal sink.
type HRPortalConfig struct {
	// DataFile keeps the records as JSON ("" : memory only).
	DataFile string
	// Token is the bearer token callers must send.
	Token string
	// Observe, when set, sees each received password (tests use it to
	// scan workflow histories for that exact value). Never set in a worker.
	Observe func(secret.Secret)
}

// HRPortal is the dev stack's stand-in for an internal HR portal. It
// serves HTTPS with a certificate made at start, which only clients given
// its CertPool trust.
type HRPortal struct {
	dir     *Directory
	cfg     HRPortalConfig
	cert    tls.Certificate
	certPEM []byte

	mu            sync.Mutex
	handoffs      []Handoff
	notifications []Notification
}

// maxNotifications bounds the notification log.
const maxNotifications = 200

type portalState struct {
	Handoffs      []Handoff      `json:"handoffs"`
	Notifications []Notification `json:"notifications"`
}

// NewHRPortal makes the sink with a fresh self-signed certificate for
// 127.0.0.1, ::1 and localhost, valid for 30 days, and loads earlier
// records from cfg.DataFile.
func NewHRPortal(dir *Directory, cfg HRPortalConfig) (*HRPortal, error) {
	p := &HRPortal{dir: dir, cfg: cfg}
	var err error
	if p.cert, p.certPEM, err = selfSigned(time.Now()); err != nil {
		return nil, err
	}
	if cfg.DataFile != "" {
		b, err := os.ReadFile(cfg.DataFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("sandbox: hr portal: %w", err)
		default:
			var st portalState
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("sandbox: hr portal: %s: %w", cfg.DataFile, err)
			}
			p.handoffs, p.notifications = st.Handoffs, st.Notifications
		}
	}
	return p, nil
}

func selfSigned(now time.Time) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("sandbox: certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("sandbox: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "jml dev HR portal", Organization: []string{"jml sandbox"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("sandbox: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("sandbox: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// TLSConfig is the server side of the sink's HTTPS.
func (p *HRPortal) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.cert}, MinVersion: tls.VersionTLS12}
}

// CertPEM is the sink's certificate (public; e.g. for curl --cacert).
func (p *HRPortal) CertPEM() []byte { return p.certPEM }

// TrustingClient returns an HTTP client that trusts the system roots plus
// this sink's certificate, and nothing else is changed: the process's
// other clients and the machine's trust store do not trust the sink.
func (p *HRPortal) TrustingClient(timeout time.Duration) *http.Client {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pool.AddCert(p.cert.Leaf)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// Handoffs lists the recorded handoffs.
func (p *HRPortal) Handoffs() []Handoff {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Handoff(nil), p.handoffs...)
}

// Notifications lists the received notifications, oldest first.
func (p *HRPortal) Notifications() []Notification {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Notification(nil), p.notifications...)
}

// saveLocked writes the records; callers hold mu.
func (p *HRPortal) saveLocked() error {
	if p.cfg.DataFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(portalState{Handoffs: p.handoffs, Notifications: p.notifications}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.cfg.DataFile), 0o700); err != nil {
		return err
	}
	tmp := p.cfg.DataFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.cfg.DataFile)
}

// Handler serves the portal API (bearer token required):
//
//	POST   /api/accounts        {"employee_id","login","initial_password"} → 201 {"id"}; again → 200
//	DELETE /api/accounts/{id}   close the account (404 when unknown)
//	POST   /api/notifications   {"text"}
//	GET    /api/handoffs        the records: {"handoffs":[…],"notifications":[…]}
//
// A handoff whose password the directory does not accept for login is
// recorded and answered 422, so the joiner's step fails visibly.
func (p *HRPortal) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/accounts", p.account)
	mux.HandleFunc("DELETE /api/accounts/{id}", p.close)
	mux.HandleFunc("POST /api/notifications", p.notify)
	mux.HandleFunc("GET /api/handoffs", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		st := portalState{Handoffs: p.handoffs, Notifications: p.notifications}
		b, _ := json.Marshal(st)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	return requireBearer(p.cfg.Token, mux)
}

func portalError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func accountID(employeeID string) string { return "hr-" + employeeID }

func (p *HRPortal) account(w http.ResponseWriter, r *http.Request) {
	var body struct {
		EmployeeID      string `json:"employee_id"`
		Login           string `json:"login"`
		InitialPassword string `json:"initial_password"`
	}
	if err := decode(r, &body); err != nil {
		// decode's message never quotes the body, so no password leaks here.
		portalError(w, http.StatusBadRequest, "body must be a JSON object")
		return
	}
	for field, v := range map[string]string{"employee_id": body.EmployeeID, "login": body.Login, "initial_password": body.InitialPassword} {
		if v == "" {
			portalError(w, http.StatusBadRequest, field+": required")
			return
		}
	}
	pw := secret.New(body.InitialPassword)
	body.InitialPassword = ""
	if p.cfg.Observe != nil {
		p.cfg.Observe(pw)
	}
	ok, err := p.dir.CheckPassword(body.Login, pw.Reveal())
	if err != nil {
		portalError(w, http.StatusUnprocessableEntity, "login: no such account in the sandbox directory")
		return
	}
	p.mu.Lock()
	h := Handoff{EmployeeID: body.EmployeeID, Login: body.Login, PasswordLength: len([]rune(pw.Reveal())),
		PasswordAccepted: ok, Deliveries: 1, ReceivedAt: time.Now().UTC()}
	status := http.StatusCreated
	for i := range p.handoffs {
		if p.handoffs[i].EmployeeID == body.EmployeeID {
			h.Deliveries = p.handoffs[i].Deliveries + 1
			p.handoffs = append(p.handoffs[:i], p.handoffs[i+1:]...)
			status = http.StatusOK
			break
		}
	}
	p.handoffs = append(p.handoffs, h)
	err = p.saveLocked()
	p.mu.Unlock()
	if err != nil {
		portalError(w, http.StatusInternalServerError, "could not record the handoff")
		return
	}
	if !ok {
		portalError(w, http.StatusUnprocessableEntity, "initial_password: the sandbox directory does not accept it for this login")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": accountID(body.EmployeeID), "employee_id": body.EmployeeID, "login": body.Login})
}

func (p *HRPortal) close(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.handoffs {
		if p.handoffs[i].EmployeeID == id || accountID(p.handoffs[i].EmployeeID) == id {
			if p.handoffs[i].ClosedAt.IsZero() {
				p.handoffs[i].ClosedAt = time.Now().UTC()
			}
			if err := p.saveLocked(); err != nil {
				portalError(w, http.StatusInternalServerError, "could not record the change")
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	portalError(w, http.StatusNotFound, "no such account")
}

func (p *HRPortal) notify(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Text string `json:"text"`
	}
	if err := decode(r, &body); err != nil || body.Text == "" {
		portalError(w, http.StatusBadRequest, "body must be a JSON object with text")
		return
	}
	if len(body.Text) > 1000 {
		body.Text = body.Text[:1000]
	}
	p.mu.Lock()
	p.notifications = append(p.notifications, Notification{Text: body.Text, ReceivedAt: time.Now().UTC()})
	if n := len(p.notifications); n > maxNotifications {
		p.notifications = append([]Notification(nil), p.notifications[n-maxNotifications:]...)
	}
	err := p.saveLocked()
	p.mu.Unlock()
	if err != nil {
		portalError(w, http.StatusInternalServerError, "could not record the notification")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
