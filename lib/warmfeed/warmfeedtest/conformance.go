// Package warmfeedtest is the conformance suite every warmfeed.Tracker passes: the
// in-process Local (the fake) and the HTTP Client against a real tracker.
package warmfeedtest

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/warmfeed"
)

// Run checks the Tracker contract on fresh trackers from newTracker, each with an
// empty board.
func Run(t *testing.T, newTracker func(t *testing.T) warmfeed.Tracker) {
	ctx := context.Background()
	dA, dB := digest.FromString("conformance a"), digest.FromString("conformance b")
	a1 := warmfeed.Agent{ID: "10.0.0.1:16001", Name: "node-1"}
	later := time.Now().Add(time.Hour)

	t.Run("publish then poll", func(t *testing.T) {
		tr := newTracker(t)
		it, err := tr.Publish(ctx, warmfeed.Intent{Digest: dA, Repository: "library/app", Expires: later})
		if err != nil || it.Seq == 0 || it.Digest != dA {
			t.Fatalf("publish: %+v %v", it, err)
		}
		if _, err := tr.Publish(ctx, warmfeed.Intent{Digest: dB, Expires: later}); err != nil {
			t.Fatal(err)
		}
		f, err := tr.Poll(ctx, a1, "", 0)
		if err != nil || f.Epoch == "" || len(f.Items) != 2 || f.Items[0].Digest != dA || f.Items[0].Repository != "library/app" {
			t.Fatalf("poll: %+v %v", f, err)
		}
		next, err := tr.Poll(ctx, a1, f.Epoch, f.Next)
		if err != nil || len(next.Items) != 0 {
			t.Fatalf("poll after %d: %+v %v", f.Next, next, err)
		}
		if _, err := tr.Publish(ctx, warmfeed.Intent{Digest: dA, Expires: later, Again: true}); err != nil {
			t.Fatal(err)
		}
		again, err := tr.Poll(ctx, a1, f.Epoch, f.Next)
		if err != nil || len(again.Items) != 1 || again.Items[0].Digest != dA {
			t.Fatalf("poll after posting again: %+v %v", again, err)
		}
	})

	t.Run("agents", func(t *testing.T) {
		tr := newTracker(t)
		if as, err := tr.Agents(ctx); err != nil || len(as) != 0 {
			t.Fatalf("before any poll: %+v %v", as, err)
		}
		if _, err := tr.Poll(ctx, a1, "", 0); err != nil {
			t.Fatal(err)
		}
		as, err := tr.Agents(ctx)
		if err != nil || len(as) != 1 || as[0].ID != a1.ID || as[0].Name != a1.Name || as[0].LastSeen.IsZero() {
			t.Fatalf("after a poll: %+v %v", as, err)
		}
	})

	t.Run("reports", func(t *testing.T) {
		tr := newTracker(t)
		if err := tr.Report(ctx, warmfeed.Report{Agent: a1.ID, Digest: dA, Error: "no room"}); err != nil {
			t.Fatal(err)
		}
		if err := tr.Report(ctx, warmfeed.Report{Agent: a1.ID, Digest: dA, OK: true}); err != nil {
			t.Fatal(err)
		}
		rs, err := tr.Reports(ctx, dA)
		if err != nil || len(rs) != 1 || !rs[0].OK || rs[0].Agent != a1.ID || rs[0].At.IsZero() {
			t.Fatalf("reports: %+v %v", rs, err)
		}
		if rs, err := tr.Reports(ctx, dB); err != nil || len(rs) != 0 {
			t.Fatalf("reports of a blob nobody reported: %+v %v", rs, err)
		}
	})

	t.Run("bad input refused", func(t *testing.T) {
		tr := newTracker(t)
		if _, err := tr.Publish(ctx, warmfeed.Intent{Digest: "sha256:nothex", Expires: later}); err == nil {
			t.Error("publish of a bad digest accepted")
		}
		if _, err := tr.Publish(ctx, warmfeed.Intent{Digest: dA, Expires: time.Now().Add(-time.Minute)}); err == nil {
			t.Error("publish of an expired intent accepted")
		}
		if _, err := tr.Poll(ctx, warmfeed.Agent{}, "", 0); err == nil {
			t.Error("poll without an agent id accepted")
		}
		if err := tr.Report(ctx, warmfeed.Report{Agent: a1.ID, Digest: "md5:x"}); err == nil {
			t.Error("report of a bad digest accepted")
		}
		if f, err := tr.Poll(ctx, a1, "", 0); err != nil || len(f.Items) != 0 {
			t.Errorf("refused intents listed: %+v %v", f, err)
		}
	})
}
