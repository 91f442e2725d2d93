package oci

import (
	"encoding/json"
	"fmt"
	"mime"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types Shoal accepts.
const (
	MediaTypeOCIManifest    = v1.MediaTypeImageManifest
	MediaTypeOCIIndex       = v1.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// MaxManifestSize bounds a manifest body (distribution's default is 4 MiB too).
const MaxManifestSize = 4 << 20

// Manifest is what the registry needs to know of a parsed manifest.
type Manifest struct {
	MediaType string
	// Blobs are the config and layers an image manifest references; they must exist
	// before the manifest is accepted (layers with foreign URLs excepted).
	Blobs []digest.Digest
	// Manifests are the children an index references; they must exist too.
	Manifests []digest.Digest
	// Subject is the manifest this one refers to (OCI 1.1 referrers); it need not exist.
	Subject digest.Digest
}

// manifestFields is the union of an image manifest's and an index's fields.
type manifestFields struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        *v1.Descriptor  `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
	Manifests     []v1.Descriptor `json:"manifests"`
	Subject       *v1.Descriptor  `json:"subject"`
}

// ParseManifest validates body as a manifest. contentType is the request's Content-Type
// (may be empty: then the body's mediaType field decides). Every failure is a
// MANIFEST_INVALID *Error saying what is wrong.
func ParseManifest(contentType string, body []byte) (Manifest, error) {
	invalid := func(format string, args ...any) (Manifest, error) {
		return Manifest{}, NewError(CodeManifestInvalid, fmt.Sprintf(format, args...), nil)
	}
	if len(body) > MaxManifestSize {
		return invalid("manifest is %d bytes, over the %d byte limit", len(body), MaxManifestSize)
	}
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return invalid("not valid JSON: %v", err)
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return invalid("schemaVersion must be 2 (Docker schema 1 is not supported)")
	}
	mt := f.MediaType
	if ct := baseMediaType(contentType); ct != "" && ct != "application/json" && ct != "application/octet-stream" {
		if mt != "" && mt != ct {
			return invalid("Content-Type %q does not match the manifest's mediaType %q", ct, mt)
		}
		mt = ct
	}
	if mt == "" {
		// OCI allows omitting mediaType; the fields tell which kind this is.
		mt = MediaTypeOCIManifest
		if f.Manifests != nil && f.Config == nil {
			mt = MediaTypeOCIIndex
		}
	}
	m := Manifest{MediaType: mt}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if f.Config == nil {
			return invalid("an image manifest needs a config descriptor")
		}
		if err := checkDescriptor("config", *f.Config); err != nil {
			return Manifest{}, err
		}
		m.Blobs = append(m.Blobs, f.Config.Digest)
		for i, l := range f.Layers {
			if err := checkDescriptor(fmt.Sprintf("layers[%d]", i), l); err != nil {
				return Manifest{}, err
			}
			if len(l.URLs) == 0 { // foreign layers live elsewhere
				m.Blobs = append(m.Blobs, l.Digest)
			}
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		for i, c := range f.Manifests {
			if err := checkDescriptor(fmt.Sprintf("manifests[%d]", i), c); err != nil {
				return Manifest{}, err
			}
			m.Manifests = append(m.Manifests, c.Digest)
		}
	default:
		return invalid("unsupported manifest media type %q", mt)
	}
	if f.Subject != nil {
		if err := checkDescriptor("subject", *f.Subject); err != nil {
			return Manifest{}, err
		}
		m.Subject = f.Subject.Digest
	}
	return m, nil
}

func checkDescriptor(field string, d v1.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return NewError(CodeManifestInvalid, fmt.Sprintf("%s: invalid digest %q", field, d.Digest), nil)
	}
	if d.Size < 0 {
		return NewError(CodeManifestInvalid, fmt.Sprintf("%s: negative size", field), nil)
	}
	return nil
}

func baseMediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}
