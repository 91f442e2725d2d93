package dragonfly

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/preheat"
)

// DecodeCreate never panics; it refuses with one line wrapping ErrInvalid or
// ErrTooLarge, or returns a request naming a valid repository and reference on an
// http(s) host, with a known scope and headers safe to forward.
func FuzzDecodeCreate(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodeCreate(bytes.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("DecodeCreate(%q): %v wraps neither ErrInvalid nor ErrTooLarge", body, err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("DecodeCreate(%q): error on more than one line: %q", body, err)
			}
			return
		}
		if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || !oci.ValidName(p.Repository) {
			t.Fatalf("DecodeCreate(%q) = %+v", body, p)
		}
		if r, err := oci.ParseReference(p.Reference.String()); err != nil || r != p.Reference {
			t.Fatalf("DecodeCreate(%q): reference %+v", body, p.Reference)
		}
		switch p.Scope {
		case preheat.ScopeSingleSeedPeer, preheat.ScopeAllSeedPeers, preheat.ScopeAllPeers:
		default:
			t.Fatalf("DecodeCreate(%q): scope %q", body, p.Scope)
		}
		for k, vs := range p.Headers {
			for _, v := range vs {
				if !httpguts.ValidHeaderFieldName(k) || strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("DecodeCreate(%q): header %q: %q", body, k, v)
				}
			}
		}
	})
}
