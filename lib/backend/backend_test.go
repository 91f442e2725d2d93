package backend

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobName(t *testing.T) {
	t.Parallel()
	d := digest.FromString("hello")
	want := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
	if got := BlobName(d); got != want {
		t.Fatalf("BlobName = %q, want %q", got, want)
	}
}

func TestBlobInfoName(t *testing.T) {
	t.Parallel()
	d := digest.FromString("hello")
	want := "docker/registry/v2/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded() + "/shoal-metainfo"
	if got := BlobInfoName(d); got != want {
		t.Fatalf("BlobInfoName = %q, want %q", got, want)
	}
	if _, ok := ParseBlobName(BlobInfoName(d)); ok {
		t.Fatal("ParseBlobName takes the info sidecar for a blob")
	}
}

func TestTagName(t *testing.T) {
	t.Parallel()
	got := TagName("library/busybox", "1.36")
	want := "docker/registry/v2/repositories/library/busybox/_manifests/tags/1.36/current/link"
	if got != want {
		t.Fatalf("TagName = %q, want %q", got, want)
	}
	if p := TagsPrefix("library/busybox"); got[:len(p)] != p {
		t.Fatalf("TagsPrefix %q is not a prefix of %q", p, got)
	}
}

func TestParseTagName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		repo, tag string
		ok        bool
	}{
		{TagName("busybox", "latest"), "busybox", "latest", true},
		{TagName("a/b/c", "v1.0"), "a/b/c", "v1.0", true},
		{RepositoriesPrefix + "busybox/_manifests/tags/latest/index/sha256/ab/link", "", "", false},
		{RepositoriesPrefix + "busybox/_layers/sha256/ab/link", "", "", false},
		{RepositoriesPrefix + "_manifests/tags/latest/current/link", "", "", false},
		{RepositoriesPrefix + "busybox/_manifests/tags//current/link", "", "", false},
		{"docker/registry/v2/blobs/sha256/ab/abcd/data", "", "", false},
		{RepositoriesPrefix + "../_manifests/tags/latest/current/link", "", "", false},
		{RepositoriesPrefix + "a/../../b/_manifests/tags/latest/current/link", "", "", false},
		{RepositoriesPrefix + "busybox/_manifests/tags/../current/link", "", "", false},
		{RepositoriesPrefix + "BusyBox/_manifests/tags/latest/current/link", "", "", false},
	} {
		repo, tag, ok := ParseTagName(tc.name)
		if repo != tc.repo || tag != tc.tag || ok != tc.ok {
			t.Errorf("ParseTagName(%q) = %q, %q, %v; want %q, %q, %v", tc.name, repo, tag, ok, tc.repo, tc.tag, tc.ok)
		}
	}
}

func TestParseBlobName(t *testing.T) {
	t.Parallel()
	d := digest.FromString("hello")
	hex := d.Encoded()
	for _, tc := range []struct {
		name string
		want digest.Digest
	}{
		{BlobName(d), d},
		{"docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/data", d},
		{"docker/registry/v2/blobs/sha256/zz/" + hex + "/data", ""},                   // wrong directory
		{"docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex[:10] + "/data", ""}, // short hex
		{"docker/registry/v2/blobs/sha256/" + hex[:2] + "/" + hex + "/link", ""},
		{"docker/registry/v2/blobs/md5/ab/abcd/data", ""},
		{TagName("busybox", "latest"), ""},
		{"", ""},
	} {
		got, ok := ParseBlobName(tc.name)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ParseBlobName(%q) = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	if ns, ok := NamespaceFrom(t.Context()); ok || ns != "" {
		t.Fatalf("NamespaceFrom(empty ctx) = %q, %v", ns, ok)
	}
	ctx := WithNamespace(t.Context(), "library/busybox")
	if ns, ok := NamespaceFrom(ctx); !ok || ns != "library/busybox" {
		t.Fatalf("NamespaceFrom = %q, %v; want library/busybox", ns, ok)
	}
	if ns, ok := NamespaceFrom(WithNamespace(t.Context(), "")); ok {
		t.Fatalf("NamespaceFrom(WithNamespace(\"\")) = %q, true; want no namespace", ns)
	}
}
