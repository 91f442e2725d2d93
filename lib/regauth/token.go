package regauth

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/registry"
)

// TokenConfig is the Docker token flow: clients get a JWT from the issuer's token
// service (Harbor, distribution's auth server, GitLab) and send it as a Bearer token;
// the registry verifies it with the issuer's public key and checks its access claims.
type TokenConfig struct {
	// Realm is the token service's URL, named in the challenge.
	Realm string `yaml:"realm"`
	// Service is the registry's name in the issuer's tokens (their aud claim).
	Service string `yaml:"service"`
	// Issuer is the iss claim tokens must carry.
	Issuer string `yaml:"issuer"`
	// PublicKeyFile is the issuer's public key or certificate (PEM; RSA for RS256,
	// ECDSA for ES256).
	PublicKeyFile string `yaml:"public_key_file"`
}

// On reports whether the token flow is configured.
func (c TokenConfig) On() bool { return c.Realm != "" || c.PublicKeyFile != "" }

// Validate checks the keys; messages name auth.token.<key> and the fix.
func (c TokenConfig) Validate() error {
	var errs []error
	for _, k := range []struct{ key, val, example string }{
		{"realm", c.Realm, "https://harbor.example.com/service/token"},
		{"service", c.Service, "harbor-registry"},
		{"issuer", c.Issuer, "harbor-token-issuer"},
		{"public_key_file", c.PublicKeyFile, "/etc/shoal/token-issuer.crt"},
	} {
		if k.val == "" {
			errs = append(errs, fmt.Errorf("auth.token.%s: empty (set it, e.g. %s)", k.key, k.example))
		}
	}
	return errors.Join(errs...)
}

// ResourceAccess is one entry of a token's access claim.
type ResourceAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Claims are a registry token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Access []ResourceAccess `json:"access"`
}

// Allows reports whether the claims grant a (a Repository "" is the catalog:
// registry:catalog:*).
func (c Claims) Allows(a registry.Access) bool {
	for _, ra := range c.Access {
		switch {
		case a.Repository == "" && ra.Type == "registry" && ra.Name == "catalog":
			return slices.Contains(ra.Actions, "*")
		case a.Repository != "" && ra.Type == "repository" && ra.Name == a.Repository:
			if slices.Contains(ra.Actions, a.Action) || slices.Contains(ra.Actions, "*") {
				return true
			}
		}
	}
	return false
}

// Verifier checks registry tokens against one issuer.
type Verifier struct {
	cfg    TokenConfig
	key    any
	parser *jwt.Parser
}

// NewVerifier parses the issuer's key (a PEM public key or certificate) for cfg; now
// is the clock of the expiry checks.
func NewVerifier(cfg TokenConfig, keyPEM []byte, now func() time.Time) (*Verifier, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("auth.token.public_key_file: no PEM block (point it at the issuer's public key or certificate)")
	}
	var key any
	switch b.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth.token.public_key_file: %w", err)
		}
		key = c.PublicKey
	default:
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("auth.token.public_key_file: %w (want a PUBLIC KEY or CERTIFICATE block)", err)
		}
		key = k
	}
	var methods []string
	switch key.(type) {
	case *rsa.PublicKey:
		methods = []string{"RS256", "RS384", "RS512"}
	case *ecdsa.PublicKey:
		methods = []string{"ES256", "ES384", "ES512"}
	default:
		return nil, fmt.Errorf("auth.token.public_key_file: a %T key (want RSA or ECDSA)", key)
	}
	return &Verifier{cfg: cfg, key: key, parser: jwt.NewParser(jwt.WithValidMethods(methods),
		jwt.WithIssuer(cfg.Issuer), jwt.WithAudience(cfg.Service), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now), jwt.WithLeeway(30*time.Second))}, nil
}

// LoadVerifier reads cfg's key file.
func LoadVerifier(cfg TokenConfig) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(cfg.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auth.token.public_key_file: %w (set it to a readable PEM file)", err)
	}
	return NewVerifier(cfg, b, time.Now)
}

// Verify parses and checks a token: signature by the issuer's key with an allowed
// algorithm, issuer, audience, expiry and not-before.
func (v *Verifier) Verify(raw string) (Claims, error) {
	var c Claims
	if _, err := v.parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// challenge is the Bearer challenge for a (with a scope when needed), with error
// insufficient_scope when a valid token lacked it.
func (v *Verifier) challenge(a registry.Access, scoped, insufficient bool) string {
	s := fmt.Sprintf("Bearer realm=%q,service=%q", v.cfg.Realm, v.cfg.Service)
	if scoped {
		scope := "repository:" + a.Repository + ":" + a.Action
		switch {
		case a.Repository == "":
			scope = "registry:catalog:*"
		case a.Action == "push":
			scope = "repository:" + a.Repository + ":pull,push"
		}
		s += fmt.Sprintf(",scope=%q", scope)
	}
	if insufficient {
		s += `,error="insufficient_scope"`
	}
	return s
}

// TokenMiddleware refuses every /v2/ request whose Bearer token is missing, invalid
// or lacks the access the request needs (registry.RequiredAccess): 401 UNAUTHORIZED
// with the challenge docker, crane and skopeo answer by fetching a token for the
// scope. Nothing behind it runs for a refused request. Other paths pass.
func TokenMiddleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2" && !strings.HasPrefix(r.URL.Path, "/v2/") {
				next.ServeHTTP(w, r)
				return
			}
			a, scoped := registry.RequiredAccess(r.Method, r.URL.Path)
			raw, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			var (
				claims Claims
				err    = errors.New("no bearer token")
			)
			if hasToken {
				claims, err = v.Verify(strings.TrimSpace(raw))
			}
			switch {
			case err == nil && (!scoped || claims.Allows(a)):
				next.ServeHTTP(w, r)
				return
			case err == nil:
				w.Header().Set("WWW-Authenticate", v.challenge(a, scoped, true))
				err = fmt.Errorf("the token does not grant %s on %s", a.Action, a.Repository)
			default:
				w.Header().Set("WWW-Authenticate", v.challenge(a, scoped, false))
				err = fmt.Errorf("authentication required: %w", err)
			}
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			oci.WriteError(w, oci.NewError(oci.CodeUnauthorized, oci.OneLine(err.Error()), err))
		})
	}
}
