package warmfeed

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	t0     = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	dA     = digest.FromString("a")
	dB     = digest.FromString("b")
	dC     = digest.FromString("c")
	agent1 = Agent{ID: "127.0.0.2:16001", Name: "node1"}
	agent2 = Agent{ID: "127.0.0.3:17001", Name: "node2"}
)

func seqs(f Feed) []string {
	var out []string
	for _, it := range f.Items {
		out = append(out, it.Digest.String()[7:8]+":"+string(rune('0'+it.Seq)))
	}
	return out
}

func TestBoardFeed(t *testing.T) {
	b := NewBoard("e1", 0)
	for _, d := range []digest.Digest{dA, dB} {
		if _, err := b.Publish(Intent{Digest: d, Expires: t0.Add(time.Hour)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Posting again keeps the item's place and extends it.
	it, err := b.Publish(Intent{Digest: dA, Expires: t0.Add(2 * time.Hour)}, t0)
	if err != nil || it.Seq != 1 || !it.Expires.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("repost: %+v %v", it, err)
	}
	f, err := b.Poll(agent1, "", 0, t0)
	if err != nil || f.Epoch != "e1" || f.Next != 2 || len(f.Items) != 2 || f.Items[0].Digest != dA || f.Items[1].Digest != dB {
		t.Fatalf("first poll: %+v %v", f, err)
	}
	// Nothing new since seq 2.
	if f, _ := b.Poll(agent1, "e1", 2, t0); len(f.Items) != 0 || f.Next != 2 {
		t.Fatalf("second poll: %+v", f)
	}
	// A new blob, then dA posted again: both come after seq 2, dA with a new seq.
	_, _ = b.Publish(Intent{Digest: dC, Expires: t0.Add(time.Hour)}, t0)
	it, _ = b.Publish(Intent{Digest: dA, Expires: t0.Add(time.Minute), Again: true}, t0)
	if it.Seq != 4 || !it.Expires.Equal(t0.Add(2*time.Hour)) || it.Again {
		t.Fatalf("again: %+v", it)
	}
	f, _ = b.Poll(agent1, "e1", 2, t0)
	if got := seqs(f); len(got) != 2 || f.Items[0].Digest != dC || f.Items[1].Digest != dA || f.Next != 4 {
		t.Fatalf("after again: %v next %d", got, f.Next)
	}
	// Another epoch, or a seq from the future (another board's), reads from the start.
	for _, p := range []struct {
		epoch string
		after uint64
	}{{"e0", 4}, {"e1", 99}} {
		if f, _ := b.Poll(agent1, p.epoch, p.after, t0); len(f.Items) != 3 {
			t.Errorf("poll %s/%d: %d items, want 3", p.epoch, p.after, len(f.Items))
		}
	}
	// Expired items are not listed, and Expire frees them.
	later := t0.Add(90 * time.Minute)
	if f, _ := b.Poll(agent1, "", 0, later); len(f.Items) != 1 || f.Items[0].Digest != dA {
		t.Fatalf("after expiry: %+v", f)
	}
	if st := b.Expire(later); st.Intents != 1 {
		t.Fatalf("stats %+v", st)
	}
	if it, _ := b.Publish(Intent{Digest: dB, Expires: later.Add(time.Hour)}, later); it.Seq != 5 {
		t.Errorf("expired blob posted again: seq %d, want a new one (5)", it.Seq)
	}
}

func TestBoardAgentsAndReports(t *testing.T) {
	b := NewBoard("e1", 30*time.Second)
	_, _ = b.Poll(agent1, "", 0, t0)
	_, _ = b.Poll(agent2, "", 0, t0.Add(20*time.Second))
	as := b.Agents(t0.Add(40 * time.Second))
	if len(as) != 1 || as[0].ID != agent2.ID || as[0].Name != "node2" {
		t.Fatalf("live agents: %+v", as)
	}
	if err := b.Report(Report{Agent: agent1.ID, Digest: dA, Error: "disk full"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Report(Report{Agent: agent1.ID, Digest: dA, OK: true, At: t0.Add(time.Hour)}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = b.Report(Report{Agent: agent2.ID, Digest: dA, OK: true}, t0.Add(2*time.Second))
	rs := b.Reports(dA, t0.Add(3*time.Second))
	if len(rs) != 2 || rs[0].Agent != agent1.ID || !rs[0].OK || !rs[0].At.Equal(t0.Add(time.Second)) {
		t.Fatalf("reports: %+v (the newest per agent, stamped by the board)", rs)
	}
	if rs := b.Reports(dB, t0); len(rs) != 0 {
		t.Errorf("reports of another blob: %+v", rs)
	}
	if st := b.Expire(t0.Add(ReportTTL + time.Minute)); st.Reports != 0 || st.Agents != 0 {
		t.Errorf("after the report TTL: %+v", st)
	}
}

func TestBoardRefusesBadInput(t *testing.T) {
	b := NewBoard("e1", 0)
	long := strings.Repeat("x", MaxIDLength+1)
	for name, err := range map[string]error{
		"bad digest": func() error {
			_, err := b.Publish(Intent{Digest: "sha256:zz", Expires: t0.Add(time.Hour)}, t0)
			return err
		}(),
		"expired intent": func() error { _, err := b.Publish(Intent{Digest: dA, Expires: t0}, t0); return err }(),
		"long repository": func() error {
			_, err := b.Publish(Intent{Digest: dA, Repository: long, Expires: t0.Add(time.Hour)}, t0)
			return err
		}(),
		"no agent id":        func() error { _, err := b.Poll(Agent{}, "", 0, t0); return err }(),
		"long agent name":    func() error { _, err := b.Poll(Agent{ID: "a", Name: long}, "", 0, t0); return err }(),
		"control characters": func() error { _, err := b.Poll(Agent{ID: "a\nb"}, "", 0, t0); return err }(),
		"report no digest":   b.Report(Report{Agent: "a"}, t0),
		"report ok and err":  b.Report(Report{Agent: "a", Digest: dA, OK: true, Error: "x"}, t0),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if st := b.Expire(t0); st != (Stats{}) {
		t.Errorf("refused input was stored: %+v", st)
	}
	if err := b.Report(Report{Agent: "a", Digest: dA, Error: strings.Repeat("e", 2*MaxErrorLength)}, t0); err != nil {
		t.Fatal(err)
	}
	if rs := b.Reports(dA, t0); len(rs[0].Error) != MaxErrorLength {
		t.Errorf("error kept at %d bytes, want %d", len(rs[0].Error), MaxErrorLength)
	}
}

func TestBoardBounds(t *testing.T) {
	b := NewBoard("e1", 0)
	for i := range MaxIntents {
		if _, err := b.Publish(Intent{Digest: digest.FromString(string(rune(i))), Expires: t0.Add(time.Hour)}, t0); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := b.Publish(Intent{Digest: digest.FromString("one more"), Expires: t0.Add(time.Hour)}, t0); !errors.Is(err, ErrFull) {
		t.Fatalf("past MaxIntents: %v", err)
	}
	// A blob listed already may be posted again when full.
	if _, err := b.Publish(Intent{Digest: digest.FromString(string(rune(7))), Expires: t0.Add(time.Hour), Again: true}, t0); err != nil {
		t.Fatalf("again when full: %v", err)
	}
	f, _ := b.Poll(agent1, "e1", MaxIntents-2, t0)
	if len(f.Items) != 3 || f.Items[2].Seq != MaxIntents+1 {
		t.Fatalf("the last items: %d, last %+v", len(f.Items), f.Items[len(f.Items)-1])
	}
}
