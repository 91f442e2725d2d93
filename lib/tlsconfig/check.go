// Package tlsconfig is the one `tls:` block every Shoal binary shares: a listener's
// certificate and key, this component's client certificate for calls to the others,
// the CA bundle both sides verify against, and the mode (off, tls, mtls). The checks
// are pure functions over PEM bytes and a time (check.go); TLS, the shell, loads the
// files, hands crypto/tls the current certificate on every handshake and reloads the
// files when they change (cert-manager rotates them), so a rotation needs no restart
// and drops no connection.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// Usage is what a certificate must be good for.
type Usage int

const (
	UsageServer Usage = iota
	UsageClient
)

// CheckPair parses a certificate (with its chain) and its key, and checks that they
// match, that the certificate is valid at now and that it may be used for usage. Each
// error names the keys (certKey, keyKey, e.g. "tls.cert_file") and the fix.
func CheckPair(certPEM, keyPEM []byte, now time.Time, usage Usage, certKey, keyKey string) (tls.Certificate, error) {
	if !hasBlock(certPEM, "CERTIFICATE") {
		return tls.Certificate{}, fmt.Errorf("%s: no PEM CERTIFICATE block (point it at the PEM certificate file, e.g. tls.crt)", certKey)
	}
	if !hasKeyBlock(keyPEM) {
		return tls.Certificate{}, fmt.Errorf("%s: no PEM private key block (point it at the PEM key file, e.g. tls.key)", keyKey)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s, %s: %v (the key must be the one the certificate was issued for)", certKey, keyKey, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%s: %w", certKey, err)
		}
		pair.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return tls.Certificate{}, fmt.Errorf("%s: certificate %q expired at %s (renew it; a rotated file is picked up without a restart)",
			certKey, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return tls.Certificate{}, fmt.Errorf("%s: certificate %q is not valid before %s (check this host's clock)",
			certKey, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	want, name := x509.ExtKeyUsageServerAuth, "server"
	if usage == UsageClient {
		want, name = x509.ExtKeyUsageClientAuth, "client"
	}
	if len(leaf.ExtKeyUsage) > 0 && !hasUsage(leaf.ExtKeyUsage, want) {
		return tls.Certificate{}, fmt.Errorf("%s: certificate %q is not for %s authentication (issue it with the %s auth extended key usage)",
			certKey, leaf.Subject.CommonName, name, name)
	}
	return pair, nil
}

// CheckCA parses a CA bundle: one or more PEM certificates, at least one a CA, none
// expired at now.
func CheckCA(bundle []byte, now time.Time, key string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n, cas := 0, 0
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", key, n+1, err)
		}
		n++
		if now.After(c.NotAfter) {
			return nil, fmt.Errorf("%s: CA %q expired at %s (replace the bundle with the current CA)", key, c.Subject.CommonName,
				c.NotAfter.UTC().Format(time.RFC3339))
		}
		if c.IsCA {
			cas++
		}
		pool.AddCert(c)
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block (point it at the CA bundle, e.g. ca.crt)", key)
	case cas == 0:
		return nil, fmt.Errorf("%s: none of its %d certificates is a CA (point it at the CA's certificate, not a server's)", key, n)
	}
	return pool, nil
}

func hasBlock(data []byte, typ string) bool {
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return false
		}
		if b.Type == typ {
			return true
		}
	}
}

func hasKeyBlock(data []byte) bool {
	return hasBlock(data, "PRIVATE KEY") || hasBlock(data, "EC PRIVATE KEY") || hasBlock(data, "RSA PRIVATE KEY")
}

func hasUsage(us []x509.ExtKeyUsage, want x509.ExtKeyUsage) bool {
	for _, u := range us {
		if u == want || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
