package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/regauth"
	"github.com/shoal-p2p/shoal/lib/registry"
)

// TestPushNeedsAUser: with auth.htpasswd, a push without credentials, or with wrong
// ones, is 401 with the Basic challenge and stores nothing; a user's push is stored.
func TestPushNeedsAUser(t *testing.T) {
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(standInOrigin(store))
	defer origin.Close()
	ocfg := originset.DefaultConfig()
	ocfg.Static, ocfg.Replicas = []string{origin.URL}, 1
	set, err := originset.New(ocfg, origin.Client(), zap.NewNop(), tally.NoopScope)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := regauth.LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(registry.DefaultLimits(), set, buildindexclient.New("http://buildindex.invalid", nil),
		zap.NewNop(), tally.NoopScope).WithAuth(regauth.Middleware(users, ""))
	ps := httptest.NewServer(srv.Handler(nil))
	defer ps.Close()

	blob := []byte("a layer pushed with credentials")
	d := digest.FromBytes(blob)
	push := func(user, pass string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ps.URL+"/v2/library/app/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct{ user, pass string }{{"", ""}, {"ci", "wrong"}, {"nobody", "s3cret"}} {
		resp := push(c.user, c.pass)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="shoal"` {
			t.Errorf("push as %q: %d %q", c.user, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if _, err := store.Stat(d); err == nil {
			t.Fatalf("push as %q was refused but stored", c.user)
		}
	}
	if resp := push("ci", "s3cret"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("push as ci: %d", resp.StatusCode)
	}
	if _, err := store.Stat(d); err != nil {
		t.Errorf("the user's push is not stored: %v", err)
	}
}
