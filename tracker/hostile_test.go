package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/trackerclient"
)

// rawStatus sends req as written, for what http.Client refuses to send, and returns
// the answer's status.
func rawStatus(t *testing.T, baseURL, req string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw request %.60q: %v", req, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostileInput sends the tracker API malformed digests, announce bodies and
// headers. Each answer must be the documented status and {"error": code} body; no
// peer, swarm or cached metainfo may be left, and no origin may have been asked.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	blob := makeBlob(t, "layer")
	o := newOrigin(t, "127.0.0.10", blob)
	tr := newTracker(t, o.url)
	good := agent(1, blob, false)
	with := func(field, raw string) string {
		m := map[string]json.RawMessage{}
		b, _ := json.Marshal(good)
		_ = json.Unmarshal(b, &m)
		m[field] = json.RawMessage(raw)
		b, _ = json.Marshal(m)
		return string(b)
	}
	bad := trackerclient.CodeBadRequest
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string // "" where the error edge is not reached
	}{
		{"dot-dot digest", "GET", "/metainfo/%2e%2e", "", nil, 400, bad},
		{"traversal digest", "GET", "/metainfo/sha256:..%2F..%2Fpeer", "", nil, 400, bad},
		{"uppercase algorithm", "GET", "/metainfo/SHA256:" + blob.Digest.Encoded(), "", nil, 400, bad},
		{"uppercase hex", "GET", "/metainfo/sha256:" + strings.ToUpper(blob.Digest.Encoded()), "", nil, 400, bad},
		{"digest with NUL", "GET", "/metainfo/" + blob.Digest.String() + "%00", "", nil, 400, bad},
		{"empty body", "POST", "/announce", "", nil, 400, bad},
		{"JSON array", "POST", "/announce", "[" + with("port", "1") + "]", nil, 400, bad},
		{"trailing garbage", "POST", "/announce", with("port", "1") + "}", nil, 400, bad},
		{"deeply nested", "POST", "/announce", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), nil, 400, bad},
		{"body over 64 KiB", "POST", "/announce", with("ip", `"`+strings.Repeat("1", 70<<10)+`"`), nil, 400, bad},
		{"null info_hash", "POST", "/announce", with("info_hash", "null"), nil, 400, bad},
		{"traversal info_hash", "POST", "/announce", with("info_hash", `"../../../../../../../../../../../../../.."`), nil, 400, bad},
		{"non-hex peer_id", "POST", "/announce", with("peer_id", `"`+strings.Repeat("g", 40)+`"`), nil, 400, bad},
		{"peer_id of 41", "POST", "/announce", with("peer_id", `"`+strings.Repeat("a", 41)+`"`), nil, 400, bad},
		{"ip with zone", "POST", "/announce", with("ip", `"fe80::1%eth0"`), nil, 400, bad},
		{"ip out of range", "POST", "/announce", with("ip", `"999.1.1.1"`), nil, 400, bad},
		{"ip with port", "POST", "/announce", with("ip", `"127.0.0.2:80"`), nil, 400, bad},
		{"unspecified IPv6", "POST", "/announce", with("ip", `"::"`), nil, 400, bad},
		{"ip not UTF-8", "POST", "/announce", with("ip", `"\udc80"`), nil, 400, bad},
		{"negative port", "POST", "/announce", with("port", "-1"), nil, 400, bad},
		{"overflowing port", "POST", "/announce", with("port", "9223372036854775808"), nil, 400, bad},
		{"port 65536", "POST", "/announce", with("port", "65536"), nil, 400, bad},
		{"fractional port", "POST", "/announce", with("port", "1.5"), nil, 400, bad},
		{"port as a string", "POST", "/announce", with("port", `"16881"`), nil, 400, bad},
		{"complete as a string", "POST", "/announce", with("complete", `"yes"`), nil, 400, bad},
		{"traversal digest in announce", "POST", "/announce", with("digest", `"sha256:../../../peer"`), nil, 400, bad},
		{"GET announce", "GET", "/announce", "", nil, 405, ""},
		{"huge header", "POST", "/announce", with("port", "1"), map[string]string{"X-Pad": strings.Repeat("x", 2<<20)}, 431, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), c.method, tr.url+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var eb trackerclient.ErrorBody
			if resp.StatusCode != c.status {
				t.Fatalf("%s %.80s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.status)
			}
			if c.code != "" && (json.Unmarshal(body, &eb) != nil || eb.Error != c.code || eb.Message == "") {
				t.Fatalf("%s %.80s: %d %s, want {\"error\":%q,...}", c.method, c.path, resp.StatusCode, body, c.code)
			}
		})
	}
	for name, cl := range map[string]string{"negative length": "-1", "overflowing length": "99999999999999999999"} {
		if st := rawStatus(t, tr.url, "POST /announce HTTP/1.1\r\nHost: x\r\nContent-Length: "+cl+"\r\n\r\n{}"); st != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, st)
		}
	}
	if st := tr.srv.store.Stats(); st.Peers != 0 || st.Swarms != 0 {
		t.Fatalf("bad input was stored: %+v", st)
	}
	tr.srv.mu.RLock()
	cached := len(tr.srv.byDigest) + len(tr.srv.byHash)
	tr.srv.mu.RUnlock()
	if cached != 0 || o.metainfo.Load() != 0 {
		t.Fatalf("bad input cached %d entries, asked the origin %d times", cached, o.metainfo.Load())
	}
	// The tracker still serves a good announce.
	if reply := tr.announce(t, good); reply.IntervalSeconds <= 0 {
		t.Fatalf("good announce after bad input: %+v", reply)
	}
}
