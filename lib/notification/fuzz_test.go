package notification

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Decode and Triggers never panic; they either refuse with one line wrapping
// ErrInvalid or ErrTooLarge, or return triggers with a valid digest and repository
// for manifest pushes only.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		env, err := Decode(contentType, bytes.NewReader(body))
		if err == nil {
			var tr []Trigger
			tr, err = Triggers(env)
			pushes := 0
			for _, e := range env.Events {
				if IsManifestPush(e) {
					pushes++
				}
			}
			if err == nil && len(tr) != pushes {
				t.Fatalf("%d triggers for %d manifest pushes in %q", len(tr), pushes, body)
			}
			for _, x := range tr {
				if x.Digest.Validate() != nil || x.Repository == "" || strings.ContainsAny(x.Host, "/?#") {
					t.Fatalf("trigger %+v from %q", x, body)
				}
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode(%q, %q): %v wraps neither ErrInvalid nor ErrTooLarge", contentType, body, err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Decode(%q, %q): error on more than one line: %q", contentType, body, err)
			}
		}
	})
}
