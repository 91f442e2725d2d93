package main

import (
	"testing"

	"github.com/shoal-p2p/shoal/lib/warmfeed"
	"github.com/shoal-p2p/shoal/lib/warmfeed/warmfeedtest"
)

// TestWarmFeedConformance: the tracker serves the warm feed board that lib/warmfeed's
// Client speaks, as the in-process board does.
func TestWarmFeedConformance(t *testing.T) {
	warmfeedtest.Run(t, func(t *testing.T) warmfeed.Tracker {
		tr, _ := newTrackerMaxPeers(t, 50, "http://origin.invalid:15200")
		return warmfeed.NewClient(tr.url, nil)
	})
}
