package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// gatedReader blocks its first Read until gate is closed.
type gatedReader struct {
	gate <-chan struct{}
	r    io.Reader
}

func (g *gatedReader) Read(p []byte) (int, error) {
	<-g.gate
	return g.r.Read(p)
}

// TestSeedFrom: an origin filling a blob from a source that stalls halfway already
// serves the first half to an agent; once the source goes on, the blob commits whole.
func TestSeedFrom(t *testing.T) {
	t.Parallel()
	data := randomBlob(8<<20, 11)
	d := digest.FromBytes(data)
	res, err := metainfo.Generate(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	origin := newNode(t, "127.0.0.30")
	half := len(data) / 2
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release) // a failed test must not leave the fill blocked
	src := io.MultiReader(bytes.NewReader(data[:half]), &gatedReader{gate: gate, r: bytes.NewReader(data[half:])})
	tx, err := origin.SeedFrom(d, res.InfoBytes, src)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := origin.store.Info(d); err != nil || !bytes.Equal(info, res.InfoBytes) {
		t.Fatalf("origin info: %v", err)
	}

	tracker := newFakeTracker()
	tracker.addOrigin(res.InfoHash, origin.Engine)
	agent := newNode(t, "127.0.0.31")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	atx, err := agent.Fetch(ctx, d, res.InfoBytes, tracker, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := atx.NewReader()
	defer r.Close()
	got := make([]byte, half)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read first half while the source is stalled: %v", err)
	}
	if !bytes.Equal(got, data[:half]) {
		t.Fatal("first half differs")
	}
	select {
	case <-tx.Done():
		t.Fatalf("fill done before the source went on: %v", tx.Err())
	default:
	}

	release()
	if err := waitDone(t, tx); err != nil {
		t.Fatalf("fill: %v", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest, data[half:]) {
		t.Fatal("second half differs")
	}
	if err := waitDone(t, atx); err != nil {
		t.Fatalf("agent: %v", err)
	}
	for _, n := range []*node{origin, agent} {
		b, err := os.ReadFile(n.store.BlobPath(d))
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("committed blob on %s differs (%v)", n.root, err)
		}
	}
}

// TestSeedFromBadSource: bytes that do not match the info fail the fill and leave
// nothing behind.
func TestSeedFromBadSource(t *testing.T) {
	t.Parallel()
	data := randomBlob(3<<20, 12)
	d := digest.FromBytes(data)
	res, err := metainfo.Generate(bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[(1<<20)+5] ^= 0xff
	origin := newNode(t, "127.0.0.32")
	tx, err := origin.SeedFrom(d, res.InfoBytes, bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, tx); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("fill error %v, want a digest mismatch", err)
	}
	if _, err := origin.store.Stat(d); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("blob after a bad fill: %v", err)
	}
	// A second fill from a good source succeeds.
	tx, err = origin.SeedFrom(d, res.InfoBytes, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, tx); err != nil {
		t.Fatalf("second fill: %v", err)
	}
}
