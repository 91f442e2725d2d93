package preheatauth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestCheck(t *testing.T) {
	t.Parallel()
	bearer := Config{Mode: ModeBearer, SecretFile: "f"}
	basicCfg := Config{Mode: ModeBasic, SecretFile: "f", Username: "alice"}
	header := Config{Mode: ModeHeader, SecretFile: "f", Header: "x-api-key"}
	for _, tc := range []struct {
		name    string
		cfg     Config
		secret  string
		headers map[string]string
		want    string // "" accepts
	}{
		{"none, nothing", Config{}, "", nil, ""},
		{"none, anything", Config{Mode: ModeNone}, "", map[string]string{"Authorization": "Bearer x"}, ""},

		// Harbor OAUTH {"token":"t"}.
		{"bearer", bearer, "t0ken", map[string]string{"Authorization": "Bearer t0ken"}, ""},
		{"bearer, lowercase scheme", bearer, "t0ken", map[string]string{"Authorization": "bearer t0ken"}, ""},
		{"bearer, missing", bearer, "t0ken", nil, "no Authorization header"},
		{"bearer, wrong", bearer, "t0ken", map[string]string{"Authorization": "Bearer t0kem"}, "wrong bearer token"},
		{"bearer, prefix of secret", bearer, "t0ken", map[string]string{"Authorization": "Bearer t0ke"}, "wrong bearer token"},
		{"bearer, empty token", bearer, "t0ken", map[string]string{"Authorization": "Bearer "}, "wrong bearer token"},
		{"bearer, basic sent", bearer, "t0ken", map[string]string{"Authorization": basic("t0ken", "")}, "not a Bearer token"},
		{"bearer, in another header", bearer, "t0ken", map[string]string{"X-Token": "t0ken"}, "no Authorization header"},

		// Harbor BASIC through its API, {"alice":"s3cret"}.
		{"basic", basicCfg, "s3:cret", map[string]string{"Authorization": basic("alice", "s3:cret")}, ""},
		{"basic, wrong password", basicCfg, "s3cret", map[string]string{"Authorization": basic("alice", "nope")}, "wrong user or password"},
		{"basic, wrong user", basicCfg, "s3cret", map[string]string{"Authorization": basic("bob", "s3cret")}, "wrong user or password"},
		// Harbor BASIC from the UI form: one of these at random, never alice:s3cret.
		{"basic, Harbor UI form (username)", basicCfg, "s3cret", map[string]string{"Authorization": basic("username", "alice")}, "use OAUTH or CUSTOM"},
		{"basic, Harbor UI form (password)", basicCfg, "s3cret", map[string]string{"Authorization": basic("password", "s3cret")}, "use OAUTH or CUSTOM"},
		{"basic, no colon", basicCfg, "s3cret", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}, "wrong user or password"},
		{"basic, not base64", basicCfg, "s3cret", map[string]string{"Authorization": "Basic !!!"}, "not base64"},
		{"basic, bearer sent", basicCfg, "s3cret", map[string]string{"Authorization": "Bearer s3cret"}, "not Basic credentials"},
		{"basic, missing", basicCfg, "s3cret", nil, "no Authorization header"},

		// Harbor CUSTOM {"X-Api-Key":"k"}.
		{"header", header, "k3y", map[string]string{"X-Api-Key": "k3y"}, ""},
		{"header, missing", header, "k3y", map[string]string{"Authorization": "Bearer k3y"}, "no X-Api-Key header"},
		{"header, wrong", header, "k3y", map[string]string{"X-Api-Key": "k3"}, "wrong X-Api-Key header"},
		{"header, empty", header, "k3y", map[string]string{"X-Api-Key": ""}, "wrong X-Api-Key header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := New(tc.cfg, tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for name, v := range tc.headers {
				h.Set(name, v)
			}
			err = k.Check(h)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want ErrUnauthorized saying %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" is valid
	}{
		{"default", Config{}, ""},
		{"bearer", Config{Mode: ModeBearer, SecretFile: "/s/token"}, ""},
		{"basic", Config{Mode: ModeBasic, SecretFile: "/s/pw", Username: "alice"}, ""},
		{"header", Config{Mode: ModeHeader, SecretFile: "/s/v", Header: "X-Api-Key"}, ""},
		{"unknown mode", Config{Mode: "oauth"}, `preheat.auth.mode: "oauth" is not a mode`},
		{"none with secret", Config{Mode: ModeNone, SecretFile: "/s"}, "preheat.auth.mode: none, but"},
		{"bearer without file", Config{Mode: ModeBearer}, "preheat.auth.secret_file: empty with mode bearer (set it to a file holding the token)"},
		{"basic without user", Config{Mode: ModeBasic, SecretFile: "/s"}, "preheat.auth.username: empty"},
		{"basic user with colon", Config{Mode: ModeBasic, SecretFile: "/s", Username: "a:b"}, "holds a colon"},
		{"bearer with user", Config{Mode: ModeBearer, SecretFile: "/s", Username: "a"}, "preheat.auth.username: set with mode bearer"},
		{"header without name", Config{Mode: ModeHeader, SecretFile: "/s"}, `preheat.auth.header: "" is not a header name`},
		{"header bad name", Config{Mode: ModeHeader, SecretFile: "/s", Header: "X Api"}, `"X Api" is not a header name`},
		{"bearer with header", Config{Mode: ModeBearer, SecretFile: "/s", Header: "X-A"}, "preheat.auth.header: set with mode bearer"},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("  t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blank := filepath.Join(dir, "blank")
	if err := os.WriteFile(blank, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Load(Config{Mode: ModeBearer, SecretFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Check(http.Header{"Authorization": {"Bearer t0ken"}}); err != nil {
		t.Errorf("token with the file's whitespace trimmed refused: %v", err)
	}
	if k.Challenge() != `Bearer realm="shoal-preheat"` {
		t.Errorf("challenge %q", k.Challenge())
	}
	for name, c := range map[string]Config{
		"missing file": {Mode: ModeBearer, SecretFile: filepath.Join(dir, "nope")},
		"blank file":   {Mode: ModeBearer, SecretFile: blank},
		"invalid":      {Mode: "token"},
	} {
		if _, err := Load(c); err == nil || !strings.Contains(err.Error(), "preheat.auth.") {
			t.Errorf("%s: Load = %v, want an error naming the key", name, err)
		}
	}
	if _, err := New(Config{Mode: ModeBearer, SecretFile: "f"}, ""); err == nil {
		t.Error("New accepted an empty secret")
	}
}
