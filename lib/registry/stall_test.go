package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/originset"
	"github.com/shoal-p2p/shoal/lib/stall"
)

// TestClusterStoreStall: an origin that goes silent fails a read after the stall
// timeout: before the body (its HEAD unanswered) as CodeStalled, mid-body (its GET
// sends half and stops) as a Read error; neither waits forever.
func TestClusterStoreStall(t *testing.T) {
	const size = 1000
	d := digest.FromString("stalled")
	for _, tc := range []struct {
		name     string
		hangHead bool
		wantOpen bool // Open succeeds (the stall comes mid-body)
	}{
		{"silent before the body", true, false},
		{"silent mid-body", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead && tc.hangHead {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				w.Header().Set("Content-Length", strconv.Itoa(size))
				if r.Method == http.MethodHead {
					return
				}
				_, _ = w.Write(make([]byte, size/2))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			defer close(release)
			cfg := originset.DefaultConfig()
			cfg.Static = []string{srv.URL}
			set, err := originset.New(cfg, nil, zap.NewNop(), tally.NoopScope)
			if err != nil {
				t.Fatal(err)
			}
			store := NewClusterStore(set, time.Second) // long enough for a loaded machine to answer the HEAD

			rc, _, err := store.Open(context.Background(), d)
			if !tc.wantOpen {
				var oe *oci.Error
				if !errors.As(err, &oe) || oe.Code != oci.CodeStalled {
					t.Fatalf("Open = %v, want CodeStalled", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if !errors.Is(err, stall.ErrStalled) {
				t.Fatalf("read %d bytes, then %v; want ErrStalled", n, err)
			}
			if n != size/2 {
				t.Errorf("read %d bytes before the stall, want %d", n, size/2)
			}
		})
	}
}
