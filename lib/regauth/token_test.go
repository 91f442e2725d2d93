package regauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-p2p/shoal/lib/registry"
)

var tokenCfg = TokenConfig{Realm: "https://harbor.example.com/service/token", Service: "harbor-registry",
	Issuer: "harbor-token-issuer", PublicKeyFile: "unused"}

func pubPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t *testing.T, method jwt.SigningMethod, key any, c Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(now time.Time, access ...ResourceAccess) Claims {
	return Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: tokenCfg.Issuer, Audience: jwt.ClaimStrings{tokenCfg.Service},
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now)}, Access: access}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rv, err := NewVerifier(tokenCfg, pubPEM(t, &rsaKey.PublicKey), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewVerifier(tokenCfg, pubPEM(t, &ecKey.PublicKey), func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	good := claims(now, ResourceAccess{"repository", "library/app", []string{"pull"}})
	expired := good
	expired.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	wrongIss, wrongAud := good, good
	wrongIss.Issuer = "someone-else"
	wrongAud.Audience = jwt.ClaimStrings{"other-registry"}
	noExp := good
	noExp.ExpiresAt = nil
	for _, c := range []struct {
		name  string
		v     *Verifier
		token string
		ok    bool
	}{
		{"RS256", rv, sign(t, jwt.SigningMethodRS256, rsaKey, good), true},
		{"ES256", ev, sign(t, jwt.SigningMethodES256, ecKey, good), true},
		{"another key", ev, sign(t, jwt.SigningMethodES256, otherKey, good), false},
		{"expired", rv, sign(t, jwt.SigningMethodRS256, rsaKey, expired), false},
		{"wrong issuer", rv, sign(t, jwt.SigningMethodRS256, rsaKey, wrongIss), false},
		{"wrong audience", rv, sign(t, jwt.SigningMethodRS256, rsaKey, wrongAud), false},
		{"no expiry", rv, sign(t, jwt.SigningMethodRS256, rsaKey, noExp), false},
		{"HS256 with the public key as secret", rv, sign(t, jwt.SigningMethodHS256, pubPEM(t, &rsaKey.PublicKey), good), false},
		{"none", rv, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good), false},
		{"garbage", rv, "a.b.c", false},
	} {
		_, err := c.v.Verify(c.token)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestAllows(t *testing.T) {
	c := Claims{Access: []ResourceAccess{{"repository", "library/app", []string{"pull", "push"}},
		{"repository", "team/*", []string{"*"}}, {"registry", "catalog", []string{"*"}}}}
	for _, a := range []struct {
		access registry.Access
		want   bool
	}{
		{registry.Access{Repository: "library/app", Action: "pull"}, true},
		{registry.Access{Repository: "library/app", Action: "push"}, true},
		{registry.Access{Repository: "library/app", Action: "delete"}, false},
		{registry.Access{Repository: "library/other", Action: "pull"}, false},
		{registry.Access{Repository: "team/x", Action: "pull"}, false}, // no globbing: names are exact
		{registry.Access{Repository: "", Action: "pull"}, true},
	} {
		if got := c.Allows(a.access); got != a.want {
			t.Errorf("%+v: %v, want %v", a.access, got, a.want)
		}
	}
}

func TestTokenMiddleware(t *testing.T) {
	now := time.Now()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v, err := NewVerifier(tokenCfg, pubPEM(t, &key.PublicKey), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	pullOnly := sign(t, jwt.SigningMethodES256, key, claims(now, ResourceAccess{"repository", "library/app", []string{"pull"}}))
	reached := 0
	h := TokenMiddleware(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
	for _, c := range []struct {
		name, method, path, token string
		want                      int
		challenge                 string
	}{
		{"no token, base", http.MethodGet, "/v2/", "", 401, `Bearer realm="https://harbor.example.com/service/token",service="harbor-registry"`},
		{"no token, pull", http.MethodGet, "/v2/library/app/manifests/v1", "", 401, `,scope="repository:library/app:pull"`},
		{"pull token, pull", http.MethodGet, "/v2/library/app/manifests/v1", pullOnly, 200, ""},
		{"pull token, base", http.MethodGet, "/v2/", pullOnly, 200, ""},
		{"pull token, push", http.MethodPut, "/v2/library/app/manifests/v1", pullOnly, 401, `scope="repository:library/app:pull,push",error="insufficient_scope"`},
		{"pull token, delete", http.MethodDelete, "/v2/library/app/manifests/v1", pullOnly, 401, `scope="repository:library/app:delete"`},
		{"pull token, other repo", http.MethodGet, "/v2/library/other/blobs/sha256:" + strings.Repeat("0", 64), pullOnly, 401, "insufficient_scope"},
		{"bad token", http.MethodGet, "/v2/library/app/manifests/v1", "nope", 401, `scope="repository:library/app:pull"`},
		{"probe", http.MethodGet, "/health", "", 200, ""},
	} {
		before := reached
		r := httptest.NewRequest(c.method, c.path, nil)
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, w.Code, c.want, w.Body)
		}
		if c.want == 401 {
			if reached != before {
				t.Errorf("%s: the handler ran for a refused request", c.name)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) {
				t.Errorf("%s: challenge %q, want it to contain %q", c.name, got, c.challenge)
			}
			if !strings.Contains(w.Body.String(), `"UNAUTHORIZED"`) {
				t.Errorf("%s: body %s", c.name, w.Body)
			}
		}
	}
}
