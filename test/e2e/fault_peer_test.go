//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/metainfo"
)

// TestFaultPeerSendsCorruptPieces: the first agent pulls a layer, then its stored copy
// rots (a byte flipped in every piece, same size) while it goes on seeding it, having
// verified every piece on arrival. The other agents pull the layer at once, mostly from
// it: each gets the right digest, the bad pieces are counted and the liar's address is
// banned, the pieces come from the origins and the other agents instead.
func TestFaultPeerSendsCorruptPieces(t *testing.T) {
	if len(dev.Agents) < 3 {
		t.Skip("needs 3 agents")
	}
	repo := "e2e/fault-peer"
	const size = 24 << 20
	tool(t, "crane", "append", "--insecure", "-f", randomLayerTar(t, size), "-t", proxyRef(repo+":v1"))
	m := parseManifest(t, tool(t, "crane", "manifest", "--insecure", proxyRef(repo+":v1")))
	layer := m.Layers[0].Digest
	d := digest.Digest(layer)

	liar := dev.Agents[0]
	if got := "sha256:" + sha256Hex([]byte(tool(t, "crane", "blob", "--insecure", liar.Registry+"/"+repo+"@"+layer))); got != layer {
		t.Fatalf("%s pulled %s, want %s", liar.Name, got, layer)
	}
	stored := filepath.Join(dev.State, liar.Name, "blobs", "sha256", d.Encoded())
	waitFor(t, liar.Name+" to commit the layer", func() bool {
		_, err := os.Stat(stored)
		return err == nil
	})
	f, err := os.OpenFile(stored, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pieceLen := metainfo.PieceLength(fi.Size())
	b := make([]byte, 1)
	for off := pieceLen / 2; off < fi.Size(); off += pieceLen {
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x5a
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	t.Logf("flipped a byte in each of the %d pieces of %s's copy", (fi.Size()+pieceLen-1)/pieceLen, liar.Name)

	others := dev.Agents[1:]
	badBefore := make([]float64, len(others))
	for i, a := range others {
		badBefore[i] = metric(t, a.Registry, "shoal_agent_p2p_bad_pieces", func(float64) bool { return true })
	}
	var wg sync.WaitGroup
	for _, a := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := toolErr("crane", "blob", "--insecure", a.Registry+"/"+repo+"@"+layer)
			if err != nil {
				t.Errorf("%s pull: %v", a.Name, err)
				return
			}
			if got := "sha256:" + sha256Hex([]byte(out)); got != layer {
				t.Errorf("%s pulled %s, want %s", a.Name, got, layer)
			}
		}()
	}
	wg.Wait()
	// The agents' counters are sampled every second.
	waitFor(t, "a bad piece counted by an agent", func() bool {
		var bad float64
		for i, a := range others {
			bad += metric(t, a.Registry, "shoal_agent_p2p_bad_pieces", func(float64) bool { return true }) - badBefore[i]
		}
		if bad > 0 {
			t.Logf("%v bad pieces from %s, all refetched", bad, liar.Name)
		}
		return bad > 0
	})
	// The liar's copy is dropped, and the other agents restarted: anacrolix/torrent
	// v1.61 bans an address for the life of the client, so they would never trade with
	// the first agent again (later tests, and this one run again, need them to).
	if err := os.Remove(stored); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, a := range dev.Agents {
		if err := dev.StopProcess(a.Name); err != nil {
			t.Fatal(err)
		}
		if err := dev.StartProcess(ctx, a.Name); err != nil {
			t.Fatal(err)
		}
	}
}
