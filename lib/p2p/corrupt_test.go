package p2p

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/blobstore"
)

// flipByte flips one bit of d's stored file at off, keeping its size.
func flipByte(t *testing.T, n *node, d digest.Digest, off int64) {
	t.Helper()
	f, err := os.OpenFile(n.store.BlobPath(d), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStoredCopyIsNotSeeded: one of two seeders holds a copy of the blob with
// a bit flipped on disk. It sends nothing of the bad piece (its pieces are checked on
// first read), quarantines its copy and stops seeding; the agent completes from the
// good seeder, with the right digest and no bad piece received.
func TestCorruptStoredCopyIsNotSeeded(t *testing.T) {
	t.Parallel()
	data := randomBlob(8<<20, 11)
	d := digest.FromBytes(data)
	bad, good := newNode(t, "127.0.0.50"), newNode(t, "127.0.0.51")
	tracker := newFakeTracker()
	var infoBytes []byte
	for _, o := range []*node{bad, good} {
		res, err := o.store.Ingest(d, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		infoBytes = res.InfoBytes
		tracker.addOrigin(res.InfoHash, o.Engine)
	}
	flipByte(t, bad, d, 3<<20+12345)
	for _, o := range []*node{bad, good} {
		if err := o.Seed(d, infoBytes); err != nil {
			t.Fatal(err)
		}
	}

	agent := newNode(t, "127.0.0.52")
	tx, got, err := fetchAll(t, agent, d, infoBytes, tracker)
	if err != nil {
		t.Fatal(err)
	}
	if got != d {
		t.Fatalf("agent streamed %s, want %s", got, d)
	}
	if err := waitDone(t, tx); err != nil {
		t.Fatal(err)
	}
	if st := agent.Stats(); st.BadPieces != 0 {
		t.Errorf("agent received %d bad pieces: the corrupt copy was seeded", st.BadPieces)
	}
	// Whether the bad seeder was asked for the bad piece depends on the swarm; if it
	// was, its copy is in quarantine now. Ask it for every piece to make sure.
	probe := newNode(t, "127.0.0.53")
	only := newFakeTracker()
	only.addOrigin(tx.a.ih, bad.Engine)
	probeDone := make(chan error, 1)
	go func() {
		_, _, err := fetchAll(t, probe, d, infoBytes, only)
		probeDone <- err
	}()
	deadline := time.Now().Add(testTimeout)
	for {
		if _, err := bad.store.Stat(d); errors.Is(err, blobstore.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the corrupt copy is still in the store")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if paths, err := bad.store.Quarantined(d); err != nil || len(paths) != 1 {
		t.Errorf("quarantined copies: %v, %v", paths, err)
	}
	if st := probe.Stats(); st.BadPieces != 0 {
		t.Errorf("probe received %d bad pieces", st.BadPieces)
	}
	if _, err := good.store.Stat(d); err != nil {
		t.Errorf("the good seeder's copy: %v", err)
	}
	probe.Close() // its fetch can never complete: the only seeder is gone
	<-probeDone
}
