// Package preheatauth checks the credential on incoming preheat calls (Harbor's kraken
// and dragonfly providers) against a configured secret, in constant time. Check is
// pure; Load reads the secret file once at start.
//
// Harbor's instance form offers four auth modes; what each puts on the wire (health
// checks, preheat POSTs and job polls alike), and the mode here that accepts it:
//
//	Harbor mode          Harbor sends                       mode here
//	NONE                 nothing                            none
//	OAUTH {token}        Authorization: Bearer <token>      bearer
//	CUSTOM {k: v}        <k>: <v>                           header
//	BASIC (UI form)      unusable, see below                (none works)
//	BASIC (API) {u: p}   Authorization: Basic base64(u:p)   basic
//
// Harbor's BASIC mode builds the header from the first key of its stored map and that
// key's value. The UI form stores {"username": u, "password": p}, and Go's random map
// order makes Harbor send Basic base64("username:u") or base64("password:p") at random,
// never base64("u:p"). So an admin must pick OAUTH (bearer here) or CUSTOM (header
// here); basic only works with an instance created through Harbor's API with a one-key
// map {"<user>": "<password>"}. Docs must say so.
package preheatauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Mode is how incoming preheat calls prove who they are.
type Mode string

// The modes.
const (
	ModeNone   Mode = "none"
	ModeBearer Mode = "bearer"
	ModeBasic  Mode = "basic"
	ModeHeader Mode = "header"
)

// ErrUnauthorized is wrapped by every refused credential (the handler answers 401).
var ErrUnauthorized = errors.New("unauthorized")

// Config is the auth block of the preheat endpoints (a binary embeds it under
// preheat.auth, the prefix its messages name).
type Config struct {
	// Mode is none (no check: anyone who reaches the listener may start a preheat),
	// bearer (Harbor's OAUTH), basic (Harbor's BASIC through its API only, see the
	// package doc) or header (Harbor's CUSTOM). Default none.
	Mode Mode `yaml:"mode"`
	// SecretFile holds the secret (a mounted Secret), read at start, surrounding
	// whitespace dropped: the token (bearer), the password (basic) or the header's
	// value (header). Required unless mode is none.
	SecretFile string `yaml:"secret_file"`
	// Username is the expected user (basic only).
	Username string `yaml:"username"`
	// Header is the expected header's name, e.g. X-Api-Key (header only).
	Header string `yaml:"header"`
}

// Validate checks c; messages name the key (preheat.auth.…) and the fix.
func (c Config) Validate() error {
	mode := c.mode()
	switch mode {
	case ModeNone, ModeBearer, ModeBasic, ModeHeader:
	default:
		return fmt.Errorf("preheat.auth.mode: %q is not a mode (set none, bearer, basic or header)", c.Mode)
	}
	switch {
	case mode == ModeNone && (c.SecretFile != "" || c.Username != "" || c.Header != ""):
		return errors.New("preheat.auth.mode: none, but secret_file, username or header is set (set mode: bearer, basic or header, or drop them)")
	case mode != ModeNone && c.SecretFile == "":
		return fmt.Errorf("preheat.auth.secret_file: empty with mode %s (set it to a file holding the %s)", mode, secretName(mode))
	case mode == ModeBasic && c.Username == "":
		return errors.New("preheat.auth.username: empty with mode basic (set the user Harbor sends)")
	case mode == ModeBasic && strings.Contains(c.Username, ":"):
		return fmt.Errorf("preheat.auth.username: %q holds a colon, which basic auth cannot carry (pick another user)", c.Username)
	case mode != ModeBasic && c.Username != "":
		return fmt.Errorf("preheat.auth.username: set with mode %s (it is for mode basic only; drop it)", mode)
	case mode == ModeHeader && !httpguts.ValidHeaderFieldName(c.Header):
		return fmt.Errorf("preheat.auth.header: %q is not a header name (set e.g. header: X-Api-Key, the key of Harbor's CUSTOM auth)", c.Header)
	case mode != ModeHeader && c.Header != "":
		return fmt.Errorf("preheat.auth.header: set with mode %s (it is for mode header only; drop it)", mode)
	}
	return nil
}

func (c Config) mode() Mode {
	if c.Mode == "" {
		return ModeNone
	}
	return c.Mode
}

func secretName(m Mode) string {
	switch m {
	case ModeBearer:
		return "token"
	case ModeBasic:
		return "password"
	}
	return "header value"
}

// Checker checks credentials against one configured secret. Safe for concurrent use.
type Checker struct {
	mode   Mode
	user   [sha256.Size]byte
	secret [sha256.Size]byte
	header string // canonical
}

// Load validates c and reads its secret file.
func Load(c Config) (*Checker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var secret string
	if c.mode() != ModeNone {
		raw, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("preheat.auth.secret_file: %w (mount the Secret there)", err)
		}
		if secret = strings.TrimSpace(string(raw)); secret == "" {
			return nil, fmt.Errorf("preheat.auth.secret_file: %s is empty (write the %s there)", c.SecretFile, secretName(c.mode()))
		}
	}
	return New(c, secret)
}

// New builds a Checker for c with the secret already read (Load reads it from
// c.SecretFile; tests pass it directly).
func New(c Config, secret string) (*Checker, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	k := &Checker{mode: c.mode(), header: http.CanonicalHeaderKey(c.Header)}
	if k.mode != ModeNone && secret == "" {
		return nil, fmt.Errorf("preheat.auth.secret_file: the %s is empty", secretName(k.mode))
	}
	k.user, k.secret = sha256.Sum256([]byte(c.Username)), sha256.Sum256([]byte(secret))
	return k, nil
}

// Check returns nil if h carries the configured credential, else an error wrapping
// ErrUnauthorized that says what was missing or wrong, never the secret or what was
// presented. Comparisons are of SHA-256 digests in constant time, so neither the
// secret's content nor its length leaks through timing.
func (k *Checker) Check(h http.Header) error {
	switch k.mode {
	case ModeNone:
		return nil
	case ModeHeader:
		v := h.Values(k.header)
		if len(v) == 0 {
			return fmt.Errorf("%w: no %s header", ErrUnauthorized, k.header)
		}
		if !k.equal(k.secret, v[0]) {
			return fmt.Errorf("%w: wrong %s header", ErrUnauthorized, k.header)
		}
		return nil
	}
	a := h.Get("Authorization")
	if a == "" {
		return fmt.Errorf("%w: no Authorization header", ErrUnauthorized)
	}
	scheme, cred, _ := strings.Cut(a, " ")
	cred = strings.TrimSpace(cred)
	if k.mode == ModeBearer {
		if !strings.EqualFold(scheme, "Bearer") {
			return fmt.Errorf("%w: Authorization is not a Bearer token", ErrUnauthorized)
		}
		if !k.equal(k.secret, cred) {
			return fmt.Errorf("%w: wrong bearer token", ErrUnauthorized)
		}
		return nil
	}
	if !strings.EqualFold(scheme, "Basic") {
		return fmt.Errorf("%w: Authorization is not Basic credentials", ErrUnauthorized)
	}
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return fmt.Errorf("%w: Basic credentials are not base64", ErrUnauthorized)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	// Both compared, always: which one is wrong must not show in the timing.
	userOK, passOK := k.equal(k.user, user), k.equal(k.secret, pass)
	if !ok || !userOK || !passOK {
		return fmt.Errorf("%w: wrong user or password (Harbor's BASIC mode from its UI form never sends a usable one: use OAUTH or CUSTOM)", ErrUnauthorized)
	}
	return nil
}

// Challenge is the WWW-Authenticate value of a 401, or "" when the mode has none.
func (k *Checker) Challenge() string {
	switch k.mode {
	case ModeBearer:
		return `Bearer realm="shoal-preheat"`
	case ModeBasic:
		return `Basic realm="shoal-preheat"`
	}
	return ""
}

func (k *Checker) equal(want [sha256.Size]byte, got string) bool {
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(want[:], g[:]) == 1
}
