package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/shoal-p2p/shoal/lib/p2p"
)

// parseAnnounce must agree with encoding/json on everything it accepts.
func TestParseAnnounceAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	full := `{"info_hash":"0123456789abcdef0123456789abcdef01234567","digest":"sha256:` + strings.Repeat("ab", 32) +
		`","peer_id":"` + strings.Repeat("f", 40) + `","ip":"10.1.2.3","port":16001,"complete":true}`
	for _, body := range []string{
		full,
		" \n" + strings.ReplaceAll(strings.ReplaceAll(full, ":", " : "), ",", " ,\t") + "\r\n",
		`{"complete":false,"port":1,"ip":"::1","peer_id":"x","digest":"","info_hash":"y"}`,
		`{}`,
		`{"port":-5}`,
		`{"port":0}`,
		`{"ip":"a","ip":"b"}`, // the last wins in both
	} {
		got, ok := parseAnnounce([]byte(body))
		if !ok {
			t.Errorf("%s: not parsed", body)
			continue
		}
		var want p2p.Announce
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got != want {
			t.Errorf("%s: got %+v, encoding/json %+v", body, got, want)
		}
	}
}

// Anything unusual is left to encoding/json, which accepts or rejects it.
func TestParseAnnounceDefersTheUnusual(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		``, `{`, `[]`, `null`, `{"ip":"10.0.0.1"`, `{"ip":"10.0.0.1",}`, `{"ip":"10.0.0.1"} x`,
		`{"ip":"\u0031"}`, `{"ip":"é"}`, `{"IP":"10.0.0.1"}`, `{"other":1}`, `{"ip":null}`,
		`{"port":1.5}`, `{"port":1e3}`, `{"port":01}`, `{"port":1234567890}`, `{"port":"1"}`,
		`{"complete":1}`, `{"complete":tru}`, `{"ip":"a" "port":1}`, `{"ip":"tab	"}`,
	} {
		if a, ok := parseAnnounce([]byte(body)); ok {
			t.Errorf("%q parsed as %+v; want it left to encoding/json", body, a)
		}
	}
}

func FuzzParseAnnounce(f *testing.F) {
	f.Add(`{"info_hash":"0123","digest":"sha256:ab","peer_id":"ff","ip":"10.1.2.3","port":16001,"complete":true}`)
	f.Add(`{"port":-0}`)
	f.Fuzz(func(t *testing.T, body string) {
		got, ok := parseAnnounce([]byte(body))
		if !ok {
			return
		}
		var want p2p.Announce
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("%q: parsed as %+v, encoding/json rejects it: %v", body, got, err)
		}
		if got != want {
			t.Fatalf("%q: got %+v, encoding/json %+v", body, got, want)
		}
	})
}
