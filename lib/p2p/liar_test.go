package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// trustEveryPiece makes n seed d without checking its stored pieces: a peer that
// lies (its disk rotted after the check, or it is hostile) and sends what its file holds.
func trustEveryPiece(t *testing.T, n *node, d digest.Digest) {
	t.Helper()
	n.storage.mu.Lock()
	defer n.storage.mu.Unlock()
	for _, ct := range n.storage.open {
		if ct.d != d {
			continue
		}
		ct.mu.Lock()
		for i := range ct.checked {
			ct.checked[i] = true
		}
		ct.mu.Unlock()
		return
	}
	t.Fatalf("%s is not open on %s", d, n.root)
}

// banned reports whether n's client bans ip.
func banned(n *node, ip string) bool {
	return slices.ContainsFunc(n.client.BadPeerIPs(), func(s string) bool {
		a, err := netip.ParseAddr(s)
		return err == nil && a.Unmap().String() == ip
	})
}

// TestFaultPeerSendsCorruptPieces: the only peer an agent has at first sends a bad
// byte in every piece. The agent detects the bad pieces, bans that peer's address and
// completes, with the right digest, from a good seeder that joins later; nothing of
// the liar's bytes reaches the reader.
func TestFaultPeerSendsCorruptPieces(t *testing.T) {
	t.Parallel()
	data := randomBlob(8<<20, 12)
	pieceLen := metainfo.PieceLength(int64(len(data)))
	d := digest.FromBytes(data)
	liar, good := newNode(t, "127.0.0.60"), newNode(t, "127.0.0.61")
	var infoBytes []byte
	var ih [20]byte
	for _, o := range []*node{liar, good} {
		res, err := o.store.Ingest(d, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		infoBytes, ih = res.InfoBytes, res.InfoHash
	}
	for off := pieceLen / 2; off < int64(len(data)); off += pieceLen {
		flipByte(t, liar, d, off)
	}
	for _, o := range []*node{liar, good} {
		if err := o.Seed(d, infoBytes); err != nil {
			t.Fatal(err)
		}
	}
	trustEveryPiece(t, liar, d)

	tracker := newFakeTracker()
	tracker.addOrigin(ih, liar.Engine)
	agent := newNode(t, "127.0.0.62")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	tx, err := agent.Fetch(ctx, d, infoBytes, tracker, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		got digest.Digest
		err error
	}
	read := make(chan result, 1)
	go func() {
		r := tx.NewReader()
		defer r.Close()
		h := sha256.New()
		_, err := io.Copy(h, r)
		read <- result{digest.NewDigest(digest.SHA256, h), err}
	}()

	// The liar is banned once a piece it alone sent fails its hash.
	for !banned(agent, liar.cfg.ListenIP) {
		select {
		case <-ctx.Done():
			t.Fatalf("the liar was never banned (bad pieces %d)", agent.Stats().BadPieces)
		case r := <-read:
			t.Fatalf("read ended before the liar was banned: %s, %v", r.got, r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n := agent.Stats().BadPieces; n == 0 {
		t.Error("the liar is banned but no bad piece was counted")
	}
	tracker.addOrigin(ih, good.Engine)
	r := <-read
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.got != d {
		t.Fatalf("agent streamed %s, want %s", r.got, d)
	}
	if err := waitDone(t, tx); err != nil {
		t.Fatal(err)
	}
	if got, err := agent.store.Open(d); err != nil {
		t.Errorf("the agent did not keep the blob: %v", err)
	} else {
		got.Close()
	}
}
