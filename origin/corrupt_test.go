package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// corruptStored flips one bit of d's stored copy in piece i (same size) and returns
// the piece length.
func (o *testOrigin) corruptStored(t *testing.T, d digest.Digest, i int) int64 {
	t.Helper()
	raw, err := o.store.Info(d)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := metainfo.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(o.store.BlobPath(d), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := int64(i)*info.PieceLength + 1234
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return info.PieceLength
}

// waitRefetched waits until the store holds d again, after a quarantine.
func (o *testOrigin) waitRefetched(t *testing.T, d digest.Digest) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := o.store.Stat(d); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("quarantined blob not fetched again from the backend")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCorruptStoredCopyIsNeverServed: a stored blob with a bit flipped on disk (same
// size) is refused, never sent, whether the bad piece is the first one a request
// asks for (502 stored_corrupt before any byte) or comes later in a whole-blob GET
// (the answer stops before it, short of its Content-Length); each time the copy is
// quarantined and fetched again from the backend, and then served whole and right.
func TestCorruptStoredCopyIsNeverServed(t *testing.T) {
	t.Parallel()
	o := newOrigin(t)
	data := randomBytes(3<<20+777, 21)
	d := o.upload(t, data)
	if got := o.backendBytes(t, d); !bytes.Equal(got, data) {
		t.Fatal("backend copy differs")
	}

	pl := o.corruptStored(t, d, 2)
	_, err := o.c.ReadRange(t.Context(), d, 2*pl, pl)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("502")) || !bytes.Contains([]byte(err.Error()), []byte("stored copy corrupt")) {
		t.Fatalf("ranged GET of the corrupt piece: %v, want a 502 naming the corrupt copy", err)
	}
	if q, _ := o.store.Quarantined(d); len(q) != 1 {
		t.Fatalf("%d quarantined copies, want 1", len(q))
	}
	o.waitRefetched(t, d)
	if got := o.download(t, d); !bytes.Equal(got, data) {
		t.Fatal("refetched copy served wrong bytes")
	}

	// Bad bytes past the first piece of a whole-blob GET: the good pieces before them
	// go out, then the answer stops.
	o.corruptStored(t, d, 3)
	var buf bytes.Buffer
	err = o.c.Download(t.Context(), d, &buf)
	if err == nil {
		t.Fatal("whole GET of a corrupt copy succeeded")
	}
	if int64(buf.Len()) > 3*pl || !bytes.Equal(buf.Bytes(), data[:buf.Len()]) {
		t.Errorf("served %d bytes before stopping (want at most the %d before the bad piece), or wrong ones", buf.Len(), 3*pl)
	}
	if q, _ := o.store.Quarantined(d); len(q) != 2 {
		t.Fatalf("%d quarantined copies, want 2", len(q))
	}
	o.waitRefetched(t, d)
	r, err := o.c.ReadRange(t.Context(), d, 3*pl, pl)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data[3*pl:4*pl]) {
		t.Fatalf("piece 3 after the refetch: %v", errors.Join(err, errors.New("bytes differ")))
	}
}
