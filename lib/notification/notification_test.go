package notification

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	harborDigest = "sha256:cd79c9b893893d051918657be6e1bb0999a2b137997bf92500e2d913eb68d455"
	amd64Digest  = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
	arm64Digest  = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
	indexDigest  = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, contentType string, body []byte) ([]Trigger, Envelope, error) {
	t.Helper()
	env, err := Decode(contentType, strings.NewReader(string(body)))
	if err != nil {
		return nil, env, err
	}
	tr, err := Triggers(env)
	return tr, env, err
}

// The fixtures are the bytes Harbor's kraken driver and distribution send.
func TestFixtures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, contentType string
		events            int
		want              []Trigger
	}{
		{"harbor-kraken.json", "application/json", 1, []Trigger{{
			EventID: "TI8a9AYwAcGg6TOcPa5J96sw9xAqeZj0", Repository: "library/busybox",
			Digest: harborDigest, Tag: "latest", Host: "harbor.example.com",
		}}},
		// Harbor's Go client sends no charset, but a proxy in between may add one.
		{"harbor-kraken.json", "application/json; charset=utf-8", 1, []Trigger{{
			EventID: "TI8a9AYwAcGg6TOcPa5J96sw9xAqeZj0", Repository: "library/busybox",
			Digest: harborDigest, Tag: "latest", Host: "harbor.example.com",
		}}},
		// A blob push, a manifest push, a pull and a delete: only the manifest push counts.
		{"distribution-v1.json", ContentTypeEventsV1, 4, []Trigger{{
			EventID: "a6fd2c5b-7b1a-4f47-9a29-7b0e2f2d7d11", Repository: "lib/app",
			Digest: amd64Digest, Tag: "v1", Host: "reg.example.com:5000",
		}}},
		// No size, null request/actor/source, a push without url, a mount.
		{"distribution-v2.json", ContentTypeEventsV2, 3, []Trigger{
			{EventID: "7c4f0f6e-1b2a-4c3d-9e8f-0a1b2c3d4e5f", Repository: "team/svc", Digest: arm64Digest, Host: "127.0.0.1:5000"},
			{EventID: "8d5a1a7f-2c3b-4d4e-8f9a-1b2c3d4e5f60", Repository: "team/svc", Digest: indexDigest, Tag: "2.0"},
		}},
	} {
		t.Run(tc.file+" "+tc.contentType, func(t *testing.T) {
			t.Parallel()
			got, env, err := decode(t, tc.contentType, fixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(env.Events) != tc.events {
				t.Errorf("%d events, want %d", len(env.Events), tc.events)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("triggers\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestHarborFixtureFields(t *testing.T) {
	t.Parallel()
	body := fixture(t, "harbor-kraken.json")
	if len(body) != 421 {
		t.Fatalf("fixture is %d bytes; integrations.md 3b's busybox body is 421", len(body))
	}
	env, err := Decode("application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	e := env.Events[0]
	if want := time.Date(2026, 12, 4, 3, 38, 53, 297830075, time.UTC); !e.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", e.Timestamp, want)
	}
	if e.Target.URL != "https://harbor.example.com/v2/library/busybox/manifests/latest" {
		t.Errorf(`"Url" did not land in Target.URL: %q`, e.Target.URL)
	}
	if e.Request != nil || e.Actor != nil || e.Source != nil || e.Target.Size != nil || e.Target.Length != nil {
		t.Errorf("null or absent fields decoded as set: %+v", e)
	}
}

func TestDistributionFixtureFields(t *testing.T) {
	t.Parallel()
	env, err := Decode(ContentTypeEventsV1, strings.NewReader(string(fixture(t, "distribution-v1.json"))))
	if err != nil {
		t.Fatal(err)
	}
	m := env.Events[1]
	if m.Target.Size == nil || *m.Target.Size != 528 || len(m.Target.References) != 2 || m.Actor == nil || m.Actor.Name != "alice" ||
		m.Request == nil || m.Request.UserAgent != "docker/28.0.1 go/go1.23.6" || m.Source == nil || m.Source.InstanceID == "" {
		t.Errorf("manifest push event: %+v", m)
	}
	if got := env.Events[2].Timestamp; !got.Equal(time.Date(2026, 8, 21, 8, 0, 2, 500_000_000, time.UTC)) {
		t.Errorf("offset timestamp: %v", got)
	}
}

// RFC3339Nano trims trailing zeros: 0 to 9 fraction digits all parse.
func TestTimestampDigits(t *testing.T) {
	t.Parallel()
	for n := 0; n <= 9; n++ {
		ts := "2026-12-04T03:38:53"
		if n > 0 {
			ts += "." + "123456789"[:n]
		}
		ts += "Z"
		body := `{"Events":[{"Id":"x","TimeStamp":"` + ts + `","Action":"push","Target":{"MediaType":"application/vnd.docker.distribution.manifest.v2+json","Digest":"` + harborDigest + `","Repository":"a/b"}}]}`
		tr, env, err := decode(t, "application/json", []byte(body))
		if err != nil || len(tr) != 1 || env.Events[0].Timestamp.IsZero() {
			t.Errorf("%d digits (%s): %v %+v", n, ts, err, env)
		}
	}
}

func TestIgnored(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"empty array":      `{"events":[]}`,
		"pull":             `{"events":[{"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + amd64Digest + `","repository":"a"}}]}`,
		"blob push":        `{"events":[{"action":"push","target":{"mediaType":"application/octet-stream","digest":"` + amd64Digest + `","repository":"a"}}]}`,
		"schema1 push":     `{"events":[{"action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws","digest":"` + amd64Digest + `","repository":"a"}}]}`,
		"no media type":    `{"events":[{"action":"push","target":{"digest":"` + amd64Digest + `","repository":"a"}}]}`,
		"bad digest, pull": `{"events":[{"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:zz","repository":"a"}}]}`,
		"bad time, blob":   `{"events":[{"timestamp":"yesterday","action":"push","target":{"mediaType":"application/octet-stream","digest":"x"}}]}`,
		"unknown keys":     `{"events":[{"action":"delete","color":"blue","target":{"digest":"x"}}],"extra":1}`,
		"null objects":     `{"Events":[{"Action":"push","Target":null,"Request":null,"Actor":null,"Source":null}]}`,
	} {
		tr, _, err := decode(t, ContentTypeEventsV2, []byte(body))
		if err != nil || len(tr) != 0 {
			t.Errorf("%s: %v %+v, want acknowledged and ignored", name, err, tr)
		}
	}
}

func TestBad(t *testing.T) {
	t.Parallel()
	push := func(target string) string {
		return `{"Events":[{"Id":"x","Action":"push","Target":{"MediaType":"application/vnd.docker.distribution.manifest.v2+json",` + target + `}}]}`
	}
	for _, tc := range []struct {
		name, contentType, body, want string
		err                           error
	}{
		{"bad json", "application/json", `{"Events":[`, "not a JSON notification", ErrInvalid},
		{"not an object", "application/json", `[1,2]`, "not a JSON notification", ErrInvalid},
		{"trailing garbage", "application/json", `{"events":[]}x`, "not a JSON notification", ErrInvalid},
		{"wrong type", "application/json", `{"events":[{"target":{"size":"12"}}]}`, "not a JSON notification", ErrInvalid},
		{"no events", "application/json", `{}`, "no events array", ErrInvalid},
		{"null events", "application/json", `{"events":null}`, "no events array", ErrInvalid},
		{"empty body", "application/json", ``, "not a JSON notification", ErrInvalid},
		{"form", "application/x-www-form-urlencoded", `{"events":[]}`, `Content-Type "application/x-www-form-urlencoded" is not a notification`, ErrInvalid},
		{"no content type", "", `{"events":[]}`, "no Content-Type", ErrInvalid},
		{"garbled content type", "application/json; ===", `{"events":[]}`, "Content-Type", ErrInvalid},
		{"bad digest", "application/json", push(`"Digest":"sha256:1234","Repository":"a/b"`), `events[0] (push of "a/b"): target digest "sha256:1234"`, ErrInvalid},
		{"no digest", "application/json", push(`"Repository":"a/b"`), `target digest ""`, ErrInvalid},
		{"bad repository", "application/json", push(`"Digest":"` + harborDigest + `","Repository":"A/B"`), "not a valid repository name", ErrInvalid},
		{"bad tag", "application/json", push(`"Digest":"` + harborDigest + `","Repository":"a","Tag":"-x"`), `tag "-x"`, ErrInvalid},
		{"relative url", "application/json", push(`"Digest":"` + harborDigest + `","Repository":"a","Url":"/v2/a/manifests/x"`), "not an absolute http(s) URL", ErrInvalid},
		{"bad timestamp", "application/json", `{"events":[{"timestamp":"2026-13-01","action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"` + indexDigest + `","repository":"a"}}]}`, `timestamp "2026-13-01" is not RFC 3339`, ErrInvalid},
		{"too large", "application/json", `{"events":[],"pad":"` + strings.Repeat("x", MaxBodySize) + `"}`, "over the 1048576 byte limit", ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, _, err := decode(t, tc.contentType, []byte(tc.body))
			if err == nil {
				t.Fatalf("accepted: %+v", tr)
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q, want one line wrapping %v and saying %q", err, tc.err, tc.want)
			}
		})
	}
}

// A bad manifest push anywhere refuses the whole envelope: no part of it runs.
func TestBadEventRefusesEnvelope(t *testing.T) {
	t.Parallel()
	body := `{"events":[` +
		`{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + amd64Digest + `","repository":"a"}},` +
		`{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:nope","repository":"a"}}]}`
	tr, _, err := decode(t, ContentTypeEventsV1, []byte(body))
	if err == nil || tr != nil || !strings.Contains(err.Error(), "events[1]") {
		t.Fatalf("got %+v, %v; want an error naming events[1] and no triggers", tr, err)
	}
}
