package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// An announce of any body and query is answered 200 with a reply agents decode, of
// peers with usable addresses, or 400; never 5xx, never a panic.
func FuzzAnnounce(f *testing.F) {
	blob := makeBlob(f, "layer")
	o := newOrigin(f, "127.0.0.10", blob)
	tr := newTracker(f, o.url)
	h := tr.srv.Handler(nil)
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/announce", bytes.NewReader(body))
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			reply, err := trackerclient.DecodeAnnounceReply(rec.Body)
			if err != nil {
				t.Fatalf("%q: 200 with a reply agents can't read: %v", body, err)
			}
			for _, p := range reply.Peers {
				if ip, err := netip.ParseAddr(p.IP); err != nil || ip.IsUnspecified() || p.Port <= 0 || p.Port > 65535 {
					t.Fatalf("%q: handed out %+v", body, p)
				}
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("%q?%s: %d %s", body, query, rec.Code, rec.Body)
		}
	})
}
