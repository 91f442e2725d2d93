// Package backendtest is the conformance suite of backend.Backend: every driver's
// tests call Run with a constructor of empty backends.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-p2p/shoal/lib/backend"
)

// Run checks that the backends newBackend returns behave as backend.Backend says.
// Each subtest gets a new, empty backend and runs in parallel with the others.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	for _, tc := range []struct {
		name string
		test func(t *testing.T, b backend.Backend)
	}{
		{"StatMissing", testStatMissing},
		{"DownloadMissing", testDownloadMissing},
		{"UploadStatDownload", testUploadStatDownload},
		{"Empty", testEmpty},
		{"Overwrite", testOverwrite},
		{"FailedUploadKeepsPrevious", testFailedUpload},
		{"List", testList},
		{"ListMissingPrefix", testListMissingPrefix},
		{"ConcurrentUploads", testConcurrentUploads},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newBackend(t))
		})
	}
}

func testStatMissing(t *testing.T, b backend.Backend) {
	if _, err := b.Stat(t.Context(), "missing/object"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat of a missing object: %v, want ErrNotFound", err)
	}
	upload(t, b, "dir/object", "x")
	if _, err := b.Stat(t.Context(), "dir"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat of a name that is only a prefix of objects: %v, want ErrNotFound", err)
	}
}

func testDownloadMissing(t *testing.T, b backend.Backend) {
	var buf bytes.Buffer
	if err := b.Download(t.Context(), "missing/object", &buf); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Download of a missing object: %v, want ErrNotFound", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("Download of a missing object wrote %d bytes", buf.Len())
	}
}

func testUploadStatDownload(t *testing.T, b backend.Backend) {
	data := strings.Repeat("shoal", 100_000) // bigger than any copy buffer
	name := "docker/registry/v2/blobs/sha256/ab/abcdef/data"
	upload(t, b, name, data)
	checkObject(t, b, name, data)
}

func testEmpty(t *testing.T, b backend.Backend) {
	upload(t, b, "empty", "")
	checkObject(t, b, "empty", "")
	if names := list(t, b, ""); !slices.Equal(names, []string{"empty"}) {
		t.Fatalf("List = %q, want the empty object", names)
	}
}

func testOverwrite(t *testing.T, b backend.Backend) {
	upload(t, b, "tags/latest", "a much longer first version")
	upload(t, b, "tags/latest", "second")
	checkObject(t, b, "tags/latest", "second")
}

// failingReader yields some bytes, then an error: an Upload of it must not publish.
type failingReader struct{ done bool }

var errRead = errors.New("backendtest: read failed")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, errRead
	}
	r.done = true
	return copy(p, "partial"), nil
}

func testFailedUpload(t *testing.T, b backend.Backend) {
	if err := b.Upload(t.Context(), "new", &failingReader{}); err == nil {
		t.Fatal("Upload of a failing reader succeeded")
	}
	if _, err := b.Stat(t.Context(), "new"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Stat after a failed first Upload: %v, want ErrNotFound", err)
	}
	upload(t, b, "old", "kept")
	if err := b.Upload(t.Context(), "old", &failingReader{}); err == nil {
		t.Fatal("Upload of a failing reader succeeded")
	}
	checkObject(t, b, "old", "kept")
	if names := list(t, b, ""); !slices.Equal(names, []string{"old"}) {
		t.Fatalf("List after failed uploads = %q, want [old]", names)
	}
}

func testList(t *testing.T, b backend.Backend) {
	for _, name := range []string{
		"repos/b/_tags/v2",
		"repos/a/_tags/v1",
		"repos/a/_tags/v10",
		"repos/ab/_tags/v1",
		"repos/a/sub/_tags/x",
		"other/a/_tags/v1",
		"reposx",
	} {
		upload(t, b, name, name)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"other/a/_tags/v1", "repos/a/_tags/v1", "repos/a/_tags/v10", "repos/a/sub/_tags/x", "repos/ab/_tags/v1", "repos/b/_tags/v2", "reposx"}},
		{"repos/", []string{"repos/a/_tags/v1", "repos/a/_tags/v10", "repos/a/sub/_tags/x", "repos/ab/_tags/v1", "repos/b/_tags/v2"}},
		{"repos", []string{"repos/a/_tags/v1", "repos/a/_tags/v10", "repos/a/sub/_tags/x", "repos/ab/_tags/v1", "repos/b/_tags/v2", "reposx"}},
		{"repos/a/", []string{"repos/a/_tags/v1", "repos/a/_tags/v10", "repos/a/sub/_tags/x"}},
		{"repos/a", []string{"repos/a/_tags/v1", "repos/a/_tags/v10", "repos/a/sub/_tags/x", "repos/ab/_tags/v1"}},
		{"repos/a/_tags/v1", []string{"repos/a/_tags/v1", "repos/a/_tags/v10"}},
		{"repos/a/_tags/v10", []string{"repos/a/_tags/v10"}},
		{"repos/c/", []string{}},
	} {
		if got := list(t, b, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testListMissingPrefix(t *testing.T, b backend.Backend) {
	for _, prefix := range []string{"", "nothing/", "nothing/here/", "no"} {
		if got := list(t, b, prefix); len(got) != 0 {
			t.Errorf("List(%q) on an empty backend = %q, want nothing", prefix, got)
		}
	}
}

func testConcurrentUploads(t *testing.T, b backend.Backend) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			// Distinct objects sharing new directories, and racing writers of one object.
			errs[i] = b.Upload(context.Background(), fmt.Sprintf("c/d/%d", i), strings.NewReader(fmt.Sprint(i)))
			errs[n+i] = b.Upload(context.Background(), "c/same", strings.NewReader(strings.Repeat(fmt.Sprint(i), 1000)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Upload: %v", err)
	}
	for i := range n {
		checkObject(t, b, fmt.Sprintf("c/d/%d", i), fmt.Sprint(i))
	}
	var buf bytes.Buffer
	if err := b.Download(t.Context(), "c/same", &buf); err != nil {
		t.Fatalf("Download: %v", err)
	}
	if got := buf.String(); len(got) != 1000 || strings.Count(got, got[:1]) != 1000 {
		t.Fatalf("racing uploads left a mix of versions: %.40q...", got)
	}
	if got := list(t, b, "c/"); len(got) != n+1 {
		t.Fatalf("List(c/) = %q, want %d objects", got, n+1)
	}
}

func upload(t *testing.T, b backend.Backend, name, data string) {
	t.Helper()
	if err := b.Upload(t.Context(), name, strings.NewReader(data)); err != nil {
		t.Fatalf("Upload %s: %v", name, err)
	}
}

func list(t *testing.T, b backend.Backend, prefix string) []string {
	t.Helper()
	names, err := b.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

func checkObject(t *testing.T, b backend.Backend, name, want string) {
	t.Helper()
	info, err := b.Stat(t.Context(), name)
	if err != nil {
		t.Fatalf("Stat %s: %v", name, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Stat %s: size %d, want %d", name, info.Size, len(want))
	}
	var buf bytes.Buffer
	if err := b.Download(t.Context(), name, &buf); err != nil {
		t.Fatalf("Download %s: %v", name, err)
	}
	if buf.String() != want {
		t.Fatalf("Download %s: %d bytes differ from the %d uploaded", name, buf.Len(), len(want))
	}
}
