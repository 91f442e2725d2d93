package router

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/backend/backendtest"
	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
)

func fsBackend(t *testing.T) *filesystem.Backend {
	t.Helper()
	b, err := filesystem.New(filesystem.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return New([]Route{{Match: regexp.MustCompile(`^library/`), Backend: fsBackend(t)}}, fsBackend(t))
	})
}

func TestRoutesByNamespace(t *testing.T) {
	lib, team, def := fsBackend(t), fsBackend(t), fsBackend(t)
	r := New([]Route{
		{Match: regexp.MustCompile(`^library/`), Backend: lib},
		{Match: regexp.MustCompile(`^team-a/`), Backend: team},
	}, def)
	put := func(ns, name string) {
		ctx := backend.WithNamespace(context.Background(), ns)
		if err := r.Upload(ctx, name, bytes.NewReader([]byte(ns))); err != nil {
			t.Fatal(err)
		}
	}
	put("library/busybox", "a")
	put("team-a/app", "b")
	put("other/x", "c")
	put("", "d")
	for _, c := range []struct {
		be   backend.Backend
		name string
		want bool
	}{{lib, "a", true}, {team, "b", true}, {def, "c", true}, {def, "d", true}, {def, "a", false}, {lib, "b", false}} {
		_, err := c.be.Stat(context.Background(), c.name)
		if got := err == nil; got != c.want {
			t.Errorf("%s present = %v, want %v (%v)", c.name, got, c.want, err)
		}
		if !c.want && !errors.Is(err, backend.ErrNotFound) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
