package regauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseHtpasswd(t *testing.T) {
	good := hash(t, "s3cret")
	for _, c := range []struct {
		name, file, want string
	}{
		{"one user", "alice:" + good + "\n", ""},
		{"comments and blanks", "# users\n\nalice:" + good + "\n  \n", ""},
		{"md5", "alice:$apr1$abc$def\n", "line 1: user \"alice\": not a bcrypt hash (make it with htpasswd -B)"},
		{"sha1", "alice:{SHA}abc=\n", "not a bcrypt hash"},
		{"no colon", "alice\n", "line 1: not user:hash"},
		{"broken bcrypt", "alice:$2y$xx\n", "line 1: user \"alice\""},
		{"twice", "alice:" + good + "\nalice:" + good + "\n", "line 2: user \"alice\" listed twice"},
		{"empty", "# nobody\n", "no users"},
	} {
		_, err := ParseHtpasswd([]byte(c.file))
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestMiddleware(t *testing.T) {
	h, err := ParseHtpasswd([]byte("alice:" + hash(t, "s3cret") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	reached := 0
	srv := httptest.NewServer(Middleware(h, "")(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached++
	})))
	defer srv.Close()
	for _, c := range []struct {
		name, path, user, pass string
		want                   int
	}{
		{"no credentials", "/v2/", "", "", http.StatusUnauthorized},
		{"no credentials, push", "/v2/library/app/blobs/uploads/", "", "", http.StatusUnauthorized},
		{"wrong password", "/v2/", "alice", "nope", http.StatusUnauthorized},
		{"unknown user", "/v2/", "bob", "s3cret", http.StatusUnauthorized},
		{"right", "/v2/library/app/manifests/v1", "alice", "s3cret", http.StatusOK},
		{"probe", "/health", "", "", http.StatusOK},
		{"base without slash", "/v2", "", "", http.StatusUnauthorized},
	} {
		before := reached
		req, _ := http.NewRequest(http.MethodPost, srv.URL+c.path, nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want == http.StatusUnauthorized {
			if reached != before {
				t.Errorf("%s: the handler ran for a refused request", c.name)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="shoal"` {
				t.Errorf("%s: challenge %q", c.name, got)
			}
		}
	}
}
