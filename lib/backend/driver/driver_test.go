package driver

import (
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend/filesystem"
	"github.com/shoal-p2p/shoal/lib/backend/gcs"
	"github.com/shoal-p2p/shoal/lib/backend/s3"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" if valid, else the whole message
	}{
		{"fs", Config{Kind: "fs", FS: filesystem.Config{Root: "backend"}}, ""},
		{"no kind", Config{}, "backend.kind: empty (set backend.kind: " + kindNames() + ")"},
		{"unknown kind", Config{Kind: "x"}, `backend.kind: unknown "x" (set backend.kind: ` + kindNames() + ")"},
		{"fs without root", Config{Kind: "fs"}, "backend.fs.root: empty (set backend.fs.root to a directory, e.g. /var/lib/shoal/backend)"},
		{"s3", Config{Kind: "s3", S3: s3.Config{Region: "us-east-1", Bucket: "b"}}, ""},
		{"s3 without bucket", Config{Kind: "s3"}, "backend.s3.bucket: empty (set backend.s3.bucket: my-bucket)"},
		{"gcs", Config{Kind: "gcs", GCS: gcs.Config{Bucket: "b"}}, ""},
		{"gcs without bucket", Config{Kind: "gcs"}, "backend.gcs.bucket: empty (set backend.gcs.bucket: my-bucket)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "backend")
	b, err := Open(t.Context(), Config{Kind: "fs", FS: filesystem.Config{Root: root}}, zap.NewNop())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := b.Upload(t.Context(), "x", strings.NewReader("y")); err != nil {
		t.Fatalf("Upload through the opened backend: %v", err)
	}
	if _, err := Open(t.Context(), Config{Kind: "x"}, zap.NewNop()); err == nil || !strings.HasPrefix(err.Error(), "backend.kind:") {
		t.Fatalf("Open of an unknown kind: %v, want the validation error", err)
	}
}
