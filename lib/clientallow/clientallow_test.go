package clientallow

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAllowed(t *testing.T) {
	prefixes, err := Parse("allowed_clients", []string{"10.244.0.0/16", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":        true,
		"127.9.9.9:1":           true,
		"[::1]:5000":            true,
		"[::ffff:127.0.0.1]:80": true,
		"10.244.3.7:40000":      true,
		"10.245.0.1:40000":      false,
		"192.168.1.5:1":         false,
		"[fd00::5]:1":           true,
		"[fe80::1]:1":           false,
		"garbage":               false,
	} {
		if got := Allowed(addr, prefixes); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
	if Allowed("10.244.3.7:1", nil) {
		t.Error("no list admits only loopback")
	}
	if _, err := Parse("allowed_clients", []string{"10.0.0.0/8", "10.0.0.1", "nope"}); err == nil ||
		!strings.Contains(err.Error(), "allowed_clients[1]") || !strings.Contains(err.Error(), "allowed_clients[2]") {
		t.Errorf("bad prefixes: %v", err)
	}
}

func TestMiddleware(t *testing.T) {
	reached := false
	h := Middleware("allowed_clients", nil)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"DENIED"`) || !strings.Contains(w.Body.String(), "allowed_clients") || reached {
		t.Fatalf("outsider: %d %s reached=%v", w.Code, w.Body, reached)
	}
	r.RemoteAddr = "127.0.0.1:4000"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if !reached {
		t.Fatal("loopback caller refused")
	}
}
