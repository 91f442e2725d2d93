//go:build e2e

// Package secure runs the devcluster secured (`make devcluster SECURE=1`: generated
// certificates, mTLS between components, push auth) and checks a push and a P2P pull
// in that mode, and that callers without credentials or certificates get nothing.
// Run with `make e2e-secure`.
package secure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shoal-p2p/shoal/test/cluster"
)

var dev *cluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	root, err := cluster.FindRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	state, err := os.MkdirTemp("", "shoal-e2e-secure-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dev, err = cluster.Start(ctx, cluster.Options{Root: root, State: state, Secure: true})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start secured cluster:", err)
		os.Exit(1)
	}
	code := m.Run()
	dev.Stop()
	if code == 0 {
		os.RemoveAll(state)
	} else {
		fmt.Fprintln(os.Stderr, "cluster logs kept in", state)
	}
	os.Exit(code)
}

// clientOnlyTrustingCA trusts the CA but holds no client certificate: docker or
// containerd as they reach the proxy and agents.
func clientOnlyTrustingCA(t *testing.T) *http.Transport {
	t.Helper()
	b, err := os.ReadFile(dev.Security.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("no CA in", dev.Security.CAFile)
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// TestSecuredPushAndP2PPull: a push with the generated user over https succeeds, one
// without credentials is refused (401); agent 1 pulls the image over https digest for
// digest; then, with every origin stopped, agent 2 serves each layer (over the agents'
// direct-fetch size, so through the swarm) from agent 1's pieces alone.
func TestSecuredPushAndP2PPull(t *testing.T) {
	tr := clientOnlyTrustingCA(t)
	defer tr.CloseIdleConnections()
	img, err := random.Image(3<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(cluster.ProxyAddr + "/secure/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	// No credentials: refused, 401.
	err = remote.Write(ref, img, remote.WithTransport(tr))
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("push without credentials: %v, want 401", err)
	}
	user := authn.FromConfig(authn.AuthConfig{Username: dev.Security.User, Password: dev.Security.Password})
	if err := remote.Write(ref, img, remote.WithTransport(tr), remote.WithAuth(user)); err != nil {
		t.Fatalf("push as %s: %v", dev.Security.User, err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// Agent 1 pulls the image over https.
	a, b := dev.Agents[0], dev.Agents[1]
	aref, err := name.ParseReference(a.Registry + "/secure/app@" + want.String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(aref, remote.WithTransport(tr))
	if err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("%s: manifest %s, pushed %s", a.Name, d, want)
	}
	layers, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		checkLayer(t, a.Name, l)
	}
	// With every origin stopped, agent 2 can get the layers only from agent 1: peer to
	// peer (BitTorrent between the agents; the metainfo from the trackers over mTLS).
	for _, o := range dev.Origins {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := dev.StartProcess(ctx, o.Name); err != nil {
				t.Errorf("restart %s: %v", o.Name, err)
			}
		}()
		if err := dev.StopProcess(o.Name); err != nil {
			t.Fatal(err)
		}
	}
	var size float64
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		bref, err := name.NewDigest(b.Registry + "/secure/app@" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		bl, err := remote.Layer(bref, remote.WithTransport(tr))
		if err != nil {
			t.Fatalf("%s: layer %s: %v", b.Name, d, err)
		}
		checkLayer(t, b.Name, bl)
		n, _ := bl.Size()
		size += float64(n)
	}
	var fromPeers float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		m, err := scrape(b.Registry)
		if err != nil {
			t.Fatal(err)
		}
		if fromPeers = cluster.Sum(m, "shoal_agent_p2p_bytes_downloaded", `source="peer"`); fromPeers >= size || time.Now().After(deadline) {
			break
		}
	}
	if fromPeers < size {
		t.Errorf("%s got %.0f bytes from peers, want at least the layers' %.0f", b.Name, fromPeers, size)
	}
}

func checkLayer(t *testing.T, agent string, l v1.Layer) {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed() // verifies the digest at EOF
	if err != nil {
		t.Fatalf("%s: layer %s: %v", agent, d, err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatalf("%s: layer %s: %v", agent, d, err)
	}
}

// TestComponentsRefuseStrangers: an origin asked without a client certificate answers
// 401 (its probe stays open), and plain HTTP gets no answer from any listener.
func TestComponentsRefuseStrangers(t *testing.T) {
	tr := clientOnlyTrustingCA(t)
	defer tr.CloseIdleConnections()
	anon := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	o := dev.Origins[0]
	for path, want := range map[string]int{"/health": http.StatusOK, "/blobs/sha256:" + zeros: http.StatusUnauthorized} {
		resp, err := anon.Get("https://" + o.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s %s without a client certificate: %d, want %d", o.Name, path, resp.StatusCode, want)
		}
	}
	resp, err := dev.Security.Client.Get("https://" + o.Addr + "/blobs/sha256:" + zeros)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("%s with a component's certificate: %d, want 404 (a blob nobody pushed)", o.Name, resp.StatusCode)
	}
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer plain.CloseIdleConnections()
	for _, addr := range []string{cluster.ProxyAddr, cluster.TrackerAddr, o.Addr, dev.Agents[0].Registry} {
		if resp, err := plain.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("%s answered plain HTTP", addr)
			}
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func scrape(addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cluster.ScrapeWith(ctx, dev.Security.Client, "https://"+addr)
}
