package certgen

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
	"time"
)

// TestIssueVerifies: an issued certificate verifies against its CA for its usage and
// hosts only, and Write keeps the key private.
func TestIssueVerifies(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test CA", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Issue("proxy", []string{"127.0.0.1", "proxy.shoal.svc"}, Server, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p.CertPEM)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, c := range []struct {
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"proxy.shoal.svc", x509.ExtKeyUsageServerAuth, true},
		{"other.example.com", x509.ExtKeyUsageServerAuth, false},
		{"127.0.0.1", x509.ExtKeyUsageClientAuth, false},
	} {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: c.host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{c.usage}})
		if (err == nil) != c.ok {
			t.Errorf("%s for %v: %v", c.host, c.usage, err)
		}
	}
	if _, err := ca.Issue("x", nil, 0, now, now.Add(time.Hour)); err == nil {
		t.Error("a certificate with no usage was issued")
	}
	dir := t.TempDir()
	certPath, keyPath, err := p.Write(dir, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v %v, want mode 0600", fi.Mode(), err)
	}
	if got, err := os.ReadFile(certPath); err != nil || string(got) != string(p.CertPEM) {
		t.Errorf("cert file: %v", err)
	}
}
