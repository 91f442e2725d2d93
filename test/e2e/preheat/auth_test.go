//go:build e2e

package preheat

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestPreheatWrongCredentials: with preheat.auth bearer, every preheat call of both
// contracts without the token, or with a wrong one, is 401 with a Bearer challenge and
// an OCI-style UNAUTHORIZED body that echoes no credential, and starts no job. Harbor's
// health checks pass with the right token.
func TestPreheatWrongCredentials(t *testing.T) {
	before := listJobs(t)
	// Well-formed requests: only their credentials are wrong.
	img := testImage{repo: "e2e/unauthorized", tag: "v1", index: digest.FromString("never pushed")}
	calls := []struct{ method, path, body string }{
		{http.MethodPost, "/registry/notifications", krakenBody(img, time.Now())},
		{http.MethodPost, "/oapi/v1/jobs", dragonflyBody(img.manifestURL(upstreamAddr), upstreamAuth(), "all_seed_peers")},
		{http.MethodGet, "/oapi/v1/jobs/1", ""},
		{http.MethodGet, "/preheat/jobs", ""},
		{http.MethodGet, "/preheat/jobs/1", ""},
	}
	wrong := "wrong-" + token
	creds := []struct{ name, authorization string }{
		{"no credential", ""},
		{"wrong token", "Bearer " + wrong},
		{"token prefix", "Bearer " + token[:len(token)-1]},
		{"token as basic password", "Basic " + base64.StdEncoding.EncodeToString([]byte("harbor:"+token))},
		{"empty bearer", "Bearer "},
	}
	for _, c := range calls {
		for _, cred := range creds {
			h := harborHeaders("", c.method == http.MethodPost)
			if cred.authorization != "" {
				h.Set("Authorization", cred.authorization)
			}
			code, hdr, body := call(t, c.method, proxyURL+c.path, h, c.body)
			what := c.method + " " + c.path + " with " + cred.name
			if code != http.StatusUnauthorized {
				t.Errorf("%s: %d %s; want 401", what, code, body)
				continue
			}
			if got := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
				t.Errorf("%s: WWW-Authenticate %q; want a Bearer challenge", what, got)
			}
			var e struct {
				Errors []struct {
					Code, Message string
				} `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != "UNAUTHORIZED" ||
				e.Errors[0].Message == "" || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("%s: %s body %s (%v); want an OCI error envelope with code UNAUTHORIZED", what, hdr.Get("Content-Type"), body, err)
			}
			if strings.Contains(string(body), token[:8]) {
				t.Errorf("%s: the answer shows (part of) the token: %s", what, body)
			}
		}
	}
	if jobs := newJobs(before, listJobs(t)); len(jobs) != 0 {
		t.Fatalf("refused calls started %d jobs: %+v", len(jobs), jobs)
	}

	// Harbor's health checks with the instance's token: dragonfly GET /healthy,
	// kraken GET /health.
	for _, path := range []string{"/healthy", "/health"} {
		if code, _, body := call(t, http.MethodGet, proxyURL+path, harborHeaders(token, false), ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s; want 200", path, code, body)
		}
	}
}
