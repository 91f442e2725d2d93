package trackerclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

// DecodeAnnounceReply never panics, and what it decodes from either form reads back
// the same from both forms written out again.
func FuzzDecodeAnnounceReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		reply, err := DecodeAnnounceReply(bytes.NewReader(b))
		if err != nil {
			return
		}
		object, err := json.Marshal(reply)
		if err != nil {
			t.Fatalf("%q: decoded %+v, which does not encode: %v", b, reply, err)
		}
		compact := fmt.Appendf(nil, `{"interval_seconds":%d,"compact_peers":[`, reply.IntervalSeconds)
		for i, p := range reply.Peers {
			if i > 0 {
				compact = append(compact, ',')
			}
			flags := 0
			if p.Origin {
				flags |= p2p.CompactOrigin
			}
			if p.Complete {
				flags |= p2p.CompactComplete
			}
			id, _ := json.Marshal(p.PeerID)
			ip, _ := json.Marshal(p.IP)
			compact = fmt.Appendf(compact, `[%s,%s,%d,%d]`, id, ip, p.Port, flags)
		}
		compact = append(compact, "]}"...)
		for form, enc := range map[string][]byte{"object": object, "compact": compact} {
			again, err := DecodeAnnounceReply(bytes.NewReader(enc))
			if err != nil {
				t.Fatalf("%q: decoded %+v; its %s form %s does not decode: %v", b, reply, form, enc, err)
			}
			if !sameReply(again, reply) {
				t.Fatalf("%q: decoded %+v; its %s form %s decodes as %+v", b, reply, form, enc, again)
			}
		}
	})
}

func sameReply(a, b p2p.AnnounceReply) bool {
	if a.IntervalSeconds != b.IntervalSeconds || len(a.Peers) != len(b.Peers) {
		return false
	}
	for i := range a.Peers {
		if a.Peers[i] != b.Peers[i] {
			return false
		}
	}
	return true
}
