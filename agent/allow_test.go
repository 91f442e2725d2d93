package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
)

// TestRegistryAdmitsOnlyAllowedClients: a caller outside loopback and allowed_clients
// gets 403 DENIED on the registry API before anything runs; probes stay open; a caller
// inside an allowed prefix gets through.
func TestRegistryAdmitsOnlyAllowedClients(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedClients = []string{"10.244.0.0/16"}
	h := NewServer(ServerDeps{}, cfg, zap.NewNop(), tally.NoopScope).Handler(nil)
	for _, c := range []struct {
		from, path string
		want       int
	}{
		{"192.0.2.9:5000", "/v2/", http.StatusForbidden},
		{"192.0.2.9:5000", "/v2/library/app/manifests/v1", http.StatusForbidden},
		{"192.0.2.9:5000", "/health", http.StatusOK},
		{"10.244.1.2:5000", "/v2/", http.StatusOK},
		{"127.0.0.1:5000", "/v2/", http.StatusOK},
	} {
		r := httptest.NewRequest(http.MethodGet, c.path, nil)
		r.RemoteAddr = c.from
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s %s: %d, want %d (%s)", c.from, c.path, w.Code, c.want, w.Body)
		}
		if c.want == http.StatusForbidden && !strings.Contains(w.Body.String(), `"DENIED"`) {
			t.Errorf("%s %s: body %s, want DENIED", c.from, c.path, w.Body)
		}
	}
}
