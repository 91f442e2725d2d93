// Package regauth authenticates callers of the registry API: an htpasswd file of
// bcrypt entries checked against HTTP basic auth (docker login, crane, skopeo). The
// parsing and checking are pure; Middleware is the thin shell in front of /v2/.
package regauth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// Config is the proxy's auth block: htpasswd or token, not both. With neither, the
// registry API is open.
type Config struct {
	// Htpasswd is the path of an htpasswd file with bcrypt entries (htpasswd -B):
	// user:$2y$...
	Htpasswd string `yaml:"htpasswd"`
	// Realm names the registry in the Basic challenge; default "shoal".
	Realm string `yaml:"realm"`
	// Token is the Docker token flow (JWTs from Harbor, distribution or GitLab).
	Token TokenConfig `yaml:"token"`
}

// On reports whether auth is configured.
func (c Config) On() bool { return c.Htpasswd != "" || c.Token.On() }

// Validate checks the block; messages name the key and the fix.
func (c Config) Validate() error {
	switch {
	case c.Htpasswd != "" && c.Token.On():
		return errors.New("auth.htpasswd, auth.token: both set (keep one: basic auth from the file, or tokens from an issuer)")
	case c.Token.On():
		return c.Token.Validate()
	}
	return nil
}

// Load builds the middleware c asks for (nil when auth is off), reading its files.
func Load(c Config) (func(http.Handler) http.Handler, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case c.Token.On():
		v, err := LoadVerifier(c.Token)
		if err != nil {
			return nil, err
		}
		return TokenMiddleware(v), nil
	case c.Htpasswd != "":
		users, err := LoadHtpasswd(c.Htpasswd)
		if err != nil {
			return nil, err
		}
		return Middleware(users, c.Realm), nil
	}
	return nil, nil
}

// Htpasswd is a parsed htpasswd file.
type Htpasswd struct {
	users map[string][]byte
}

// dummyHash is compared against for an unknown user, so a miss costs what a wrong
// password does and timing tells no user names.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("shoal: no such user"), bcrypt.DefaultCost)
	return h
})

// ParseHtpasswd parses an htpasswd file: one user:hash per line, blank lines and
// # comments ignored. Only bcrypt hashes are accepted (MD5, SHA-1 and crypt ones are
// weak): a line with another names its number and the fix.
func ParseHtpasswd(data []byte) (*Htpasswd, error) {
	h := &Htpasswd{users: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("line %d: not user:hash", n)
		case !strings.HasPrefix(hash, "$2"):
			return nil, fmt.Errorf("line %d: user %q: not a bcrypt hash (make it with htpasswd -B)", n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d: user %q: %v (make it with htpasswd -B)", n, user, err)
		}
		if _, dup := h.users[user]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice (keep one line per user)", n, user)
		}
		h.users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(h.users) == 0 {
		return nil, errors.New("no users (add user:bcrypt-hash lines, e.g. with htpasswd -B)")
	}
	return h, nil
}

// LoadHtpasswd reads and parses the file at path; errors name the auth.htpasswd key.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth.htpasswd: %w (set it to a readable htpasswd file)", err)
	}
	h, err := ParseHtpasswd(data)
	if err != nil {
		return nil, fmt.Errorf("auth.htpasswd %s: %w", path, err)
	}
	return h, nil
}

// Check reports whether password is user's.
func (h *Htpasswd) Check(user, password string) bool {
	hash, ok := h.users[user]
	if !ok {
		hash = dummyHash()
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && ok
}

// Middleware refuses every /v2/ request without a valid user's basic credentials with
// 401 UNAUTHORIZED and the Basic challenge docker login answers; nothing behind it runs
// for a refused request. Other paths (probes, metrics, preheat, which has its own
// auth) pass.
func Middleware(h *Htpasswd, realm string) func(http.Handler) http.Handler {
	if realm == "" {
		realm = "shoal"
	}
	challenge := fmt.Sprintf("Basic realm=%q", realm)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
				next.ServeHTTP(w, r)
				return
			}
			user, pass, ok := r.BasicAuth()
			if ok && h.Check(user, pass) {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", challenge)
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			msg := "authentication required: log in (docker login) with a user of auth.htpasswd"
			if ok {
				msg = "wrong user name or password"
			}
			oci.WriteError(w, oci.NewError(oci.CodeUnauthorized, msg, errors.New(msg)))
		})
	}
}
