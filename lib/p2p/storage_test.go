package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/blobstore"
	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// TestCommitHashWhileDownloading: the commit uses the sha256 fed with verified pieces
// during the download, and a piece that turns unverified after it was hashed (then is
// written again) makes the hash start over, so the committed blob is the final bytes.
func TestCommitHashWhileDownloading(t *testing.T) {
	t.Parallel()
	const pieceLen = 1 << 20
	data := randomBlob(3*pieceLen+100, 7)
	res, err := metainfo.Generate(bytes.NewReader(data), pieceLen)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := metainfo.Parse(res.InfoBytes)
	if err != nil {
		t.Fatal(err)
	}
	store, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan struct{}, 1)
	ct, err := newCASStorage(store, zap.NewNop(), func() { committed <- struct{}{} }).openTorrent(&info)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.close()
	put := func(i int, b []byte) {
		t.Helper()
		off := int64(i) * pieceLen
		if ok, err := ct.writeUnverified(b[off:min(off+pieceLen, int64(len(b)))], off, i); !ok || err != nil {
			t.Fatalf("write piece %d: %v, %v", i, ok, err)
		}
	}
	hashedAtLeast := func(n int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := ct.await(ctx, func() bool { return ct.hashed >= n }); err != nil {
			t.Fatalf("waiting for %d pieces hashed: %v (hashed %d)", n, err, ct.hashed)
		}
	}

	// Pieces 0 and 1 arrive wrong but are (wrongly) marked verified, and get hashed.
	wrong := bytes.Repeat([]byte{0xAB}, len(data))
	put(0, wrong)
	put(1, wrong)
	ct.setPiece(0, true)
	ct.setPiece(1, true)
	hashedAtLeast(2)
	// Piece 0 turns unverified and is written again, right this time.
	ct.setPiece(0, false)
	ct.setPiece(1, false)
	put(0, data)
	put(1, data)
	for i := 0; i < 4; i++ {
		if i >= 2 {
			put(i, data)
		}
		if last := ct.setPiece(i, true); last != (i == 3) {
			t.Fatalf("setPiece(%d) last = %v", i, last)
		}
	}
	ct.commit()
	if err := ct.waitDone(context.Background()); err != nil {
		t.Fatalf("commit: %v", err)
	}
	select {
	case <-committed:
	case <-time.After(testTimeout):
		t.Fatal("commit not reported")
	}
	if ct.sum != res.Digest {
		t.Errorf("running sum %s, want %s", ct.sum, res.Digest)
	}
	if size, err := store.Stat(res.Digest); err != nil || size != int64(len(data)) {
		t.Errorf("Stat = %d, %v", size, err)
	}
}
