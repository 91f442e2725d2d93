package oci

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	cfgDigest   = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	layerDigest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"library/busybox": true, "a": true, "a.b-c__d/e_f": true, "e2e/bad": true,
		"Bad_Name": false, "": false, "a//b": false, "-a": false, "a/": false,
		strings.Repeat("a", 256): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseReference(t *testing.T) {
	if r, err := ParseReference("v1.0"); err != nil || r.Tag != "v1.0" {
		t.Fatalf("tag: %+v %v", r, err)
	}
	if r, err := ParseReference(cfgDigest); err != nil || r.Digest.String() != cfgDigest {
		t.Fatalf("digest: %+v %v", r, err)
	}
	for _, bad := range []string{"sha256:zzzz", "md5:abc", ".bad", strings.Repeat("t", 129)} {
		_, err := ParseReference(bad)
		var e *Error
		if !errors.As(err, &e) || e.Code.Name != "DIGEST_INVALID" {
			t.Errorf("ParseReference(%q) = %v, want DIGEST_INVALID", bad, err)
		}
	}
}

func manifestCode(t *testing.T, ct, body string) string {
	t.Helper()
	_, err := ParseManifest(ct, []byte(body))
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not an *Error: %v", err)
	}
	return e.Code.Name
}

func TestParseManifest(t *testing.T) {
	image := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgDigest + `","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + layerDigest + `","size":5},` +
		`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + cfgDigest + `","size":5,"urls":["https://x"]}],` +
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + layerDigest + `","size":1}}`
	m, err := ParseManifest("application/vnd.oci.image.manifest.v1+json", []byte(image))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Blobs) != 2 || m.Blobs[1].String() != layerDigest || m.Subject.String() != layerDigest {
		t.Fatalf("parsed %+v", m)
	}
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + cfgDigest + `","size":3}]}`
	m, err = ParseManifest("", []byte(index))
	if err != nil || m.MediaType != MediaTypeOCIIndex || len(m.Manifests) != 1 {
		t.Fatalf("index: %+v %v", m, err)
	}
	for name, tc := range map[string]struct{ ct, body string }{
		"truncated":       {"", `{"schemaVersion":2,`},
		"schema 1":        {"", `{"schemaVersion":1}`},
		"no config":       {MediaTypeOCIManifest, `{"schemaVersion":2,"layers":[]}`},
		"bad digest":      {MediaTypeDockerManifest, `{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1}}`},
		"type mismatch":   {MediaTypeOCIIndex, image},
		"unknown type":    {"application/x-foo", `{"schemaVersion":2}`},
		"negative size":   {MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"digest":"` + cfgDigest + `","size":-1}]}`},
		"over size limit": {"", `{"schemaVersion":2,"x":"` + strings.Repeat("x", MaxManifestSize) + `"}`},
	} {
		if code := manifestCode(t, tc.ct, tc.body); code != "MANIFEST_INVALID" {
			t.Errorf("%s: code %q, want MANIFEST_INVALID", name, code)
		}
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, NewError(CodeBlobUnknown, "sha256:x", errors.New("cause")))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"code":"BLOB_UNKNOWN"`) || strings.Contains(rec.Body.String(), "cause") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	WriteError(rec, errors.New("disk on fire"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "fire") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}
