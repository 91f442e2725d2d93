package dragonfly

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/preheat"
)

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The fixtures are the bodies Harbor's dragonfly driver sends (integrations.md 3b).
func TestDecodeHarborBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file     string
		scope    preheat.Scope
		clusters []uint
	}{
		{"harbor-create.json", preheat.DefaultScope, nil},
		{"harbor-create-scope.json", preheat.ScopeAllPeers, []uint{1, 2}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			body := fixture(t, tc.file)
			p, err := DecodeCreate(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var raw CreateRequest
			if err := json.Unmarshal([]byte(body), &raw); err != nil {
				t.Fatal(err)
			}
			want := Preheat{
				URL:    "https://harbor.example.com/v2/library/busybox/manifests/latest",
				Scheme: "https", Host: "harbor.example.com", Repository: "library/busybox",
				Reference:           oci.Reference{Tag: "latest"},
				Scope:               tc.scope,
				SchedulerClusterIDs: tc.clusters,
			}
			auth := p.Headers.Get("Authorization")
			p.Headers = nil
			if !reflect.DeepEqual(p, want) {
				t.Errorf("got  %+v\nwant %+v", p, want)
			}
			if !strings.HasPrefix(auth, "Bearer eyJ") || auth != raw.Args.Headers["Authorization"] {
				t.Errorf("pull token header %q not carried", auth)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const d = "sha256:cd79c9b893893d051918657be6e1bb0999a2b137997bf92500e2d913eb68d455"
	ok := func(mut func(*CreateRequest)) CreateRequest {
		r := CreateRequest{Type: "preheat", Args: Args{Type: "image", URL: "http://127.0.0.1:15000/v2/a/b/c/manifests/" + d}}
		mut(&r)
		return r
	}
	good, err := Validate(ok(func(r *CreateRequest) {
		r.Args.Headers = map[string]string{"x-api-key": "k"}
		r.Args.Timeout = time.Minute
		r.Args.Scope = "single_seed_peer"
	}))
	if err != nil {
		t.Fatal(err)
	}
	if good.Scheme != "http" || good.Host != "127.0.0.1:15000" || good.Repository != "a/b/c" || good.Reference.Digest != d ||
		good.Headers.Get("X-Api-Key") != "k" || good.Timeout != time.Minute || good.Scope != preheat.ScopeSingleSeedPeer {
		t.Errorf("parsed %+v", good)
	}
	for _, tc := range []struct {
		name string
		mut  func(*CreateRequest)
		want string
	}{
		{"job type", func(r *CreateRequest) { r.Type = "sync_peers" }, `type "sync_peers"`},
		{"no job type", func(r *CreateRequest) { r.Type = "" }, `type ""`},
		{"file", func(r *CreateRequest) { r.Args.Type = "file" }, `args.type "file"`},
		{"no url", func(r *CreateRequest) { r.Args.URL = "" }, "args.url: empty"},
		{"relative", func(r *CreateRequest) { r.Args.URL = "/v2/a/manifests/x" }, "not an absolute http(s) URL"},
		{"ftp", func(r *CreateRequest) { r.Args.URL = "ftp://h/v2/a/manifests/x" }, "not an absolute http(s) URL"},
		{"garbled", func(r *CreateRequest) { r.Args.URL = "http://[::1/v2/a/manifests/x" }, "not an absolute http(s) URL"},
		{"user", func(r *CreateRequest) { r.Args.URL = "https://u:p@h/v2/a/manifests/x" }, "user, query or fragment"},
		{"query", func(r *CreateRequest) { r.Args.URL = "https://h/v2/a/manifests/x?ns=docker.io" }, "user, query or fragment"},
		{"blob url", func(r *CreateRequest) { r.Args.URL = "https://h/v2/a/blobs/" + d }, "not a manifest URL"},
		{"no v2", func(r *CreateRequest) { r.Args.URL = "https://h/a/manifests/x" }, "not a manifest URL"},
		{"no name", func(r *CreateRequest) { r.Args.URL = "https://h/v2/manifests/x" }, "not a manifest URL"},
		{"bad name", func(r *CreateRequest) { r.Args.URL = "https://h/v2/A/manifests/x" }, `"A" is not a valid repository name`},
		{"no reference", func(r *CreateRequest) { r.Args.URL = "https://h/v2/a/manifests/" }, "reference"},
		{"bad reference", func(r *CreateRequest) { r.Args.URL = "https://h/v2/a/manifests/sha256:12" }, `reference "sha256:12"`},
		{"slash reference", func(r *CreateRequest) { r.Args.URL = "https://h/v2/a/manifests/x/y" }, `reference "x/y"`},
		{"scope", func(r *CreateRequest) { r.Args.Scope = "single_peer" }, `args.scope "single_peer"`},
		{"count", func(r *CreateRequest) { r.Args.ConcurrentCount = -1 }, "args.concurrent_count -1"},
		{"timeout", func(r *CreateRequest) { r.Args.Timeout = -1 }, "args.timeout -1"},
		{"header name", func(r *CreateRequest) { r.Args.Headers = map[string]string{"Bad Name": "x"} }, `"Bad Name" is not a valid header name`},
		{"header value", func(r *CreateRequest) { r.Args.Headers = map[string]string{"Authorization": "Bearer x\r\nHost: evil"} }, "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Validate(ok(tc.mut))
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error %q, want one line wrapping ErrInvalid and saying %q", err, tc.want)
			}
		})
	}
}

func TestDecodeCreateBad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, want string
		err        error
	}{
		{`{"type":"preheat",`, "not a JSON job request", ErrInvalid},
		{`[]`, "not a JSON job request", ErrInvalid},
		{`{"type":"preheat","args":{"type":"image","url":"https://h/v2/a/manifests/x","timeout":"30m"}}`, "not a JSON job request", ErrInvalid},
		{`{"type":"preheat","args":null}`, `args.type ""`, ErrInvalid},
		{`{}`, `type ""`, ErrInvalid},
		{`{"type":"preheat","pad":"` + strings.Repeat("x", MaxBodySize) + `"}`, "over the 1048576 byte limit", ErrTooLarge},
	} {
		_, err := DecodeCreate(strings.NewReader(tc.body))
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeCreate(%.60q) = %v, want %v saying %q", tc.body, err, tc.err, tc.want)
		}
	}
}

// harborJob is Harbor's dragonflyJobResponse: what it decodes both answers into.
type harborJob struct {
	ID        int       `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	State     string    `json:"state"`
	Result    struct {
		JobStates []struct {
			Error   string `json:"error"`
			Results []struct {
				SuccessTasks []*struct {
					URL      string `json:"url"`
					Hostname string `json:"hostname"`
					IP       string `json:"ip"`
				} `json:"success_tasks"`
				FailureTasks []*struct {
					URL         string `json:"url"`
					Hostname    string `json:"hostname"`
					IP          string `json:"ip"`
					Description string `json:"description"`
				} `json:"failure_tasks"`
				SchedulerClusterID uint `json:"scheduler_cluster_id"`
			} `json:"results"`
		} `json:"job_states"`
	} `json:"result"`
}

func TestEncodeJobAsHarborReadsIt(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 12, 4, 3, 38, 53, 297830075, time.FixedZone("CET", 3600))
	url := "https://harbor.example.com/v2/library/busybox/manifests/latest"
	for _, tc := range []struct {
		name      string
		s         Status
		wantError string
	}{
		{"pending, no update yet", Status{ID: 7, State: StatePending, CreatedAt: created}, ""},
		{"success", Status{ID: 8, State: StateSuccess, CreatedAt: created, UpdatedAt: created.Add(time.Minute), ClusterID: 1,
			Succeeded: []Task{{URL: url, Hostname: "origin-0", IP: "10.0.0.1"}, {URL: url, Hostname: "agent-3", IP: "10.0.1.3"}}}, ""},
		{"failure, reason made up", Status{ID: 9, State: StateFailure, CreatedAt: created, UpdatedAt: created.Add(time.Second),
			Succeeded: []Task{{URL: url, Hostname: "origin-0", IP: "10.0.0.1"}},
			Failed:    []Task{{URL: url, Hostname: "origin-1", IP: "10.0.0.2", Description: "timeout: missing sha256:ab"}}},
			"preheat failed on 1 host(s); origin-1: timeout: missing sha256:ab"},
		{"failure, reason given", Status{ID: 10, State: StateFailure, CreatedAt: created, Error: "manifest unknown: tag nope"}, "manifest unknown: tag nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := EncodeJob(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"created_at", "updated_at"} {
				s, ok := raw[k].(string)
				if !ok || s == "" {
					t.Fatalf("%s = %#v in %s: Harbor fails an empty time", k, raw[k], b)
				}
				if _, err := time.Parse(time.RFC3339, s); err != nil {
					t.Errorf("%s %q is not RFC 3339: %v", k, s, err)
				}
			}
			if _, ok := raw["id"].(float64); !ok {
				t.Errorf("id %#v is not a JSON number", raw["id"])
			}
			var h harborJob
			if err := json.Unmarshal(b, &h); err != nil {
				t.Fatalf("Harbor's struct cannot read %s: %v", b, err)
			}
			wantUpdated := tc.s.UpdatedAt
			if wantUpdated.IsZero() {
				wantUpdated = tc.s.CreatedAt
			}
			if int64(h.ID) != tc.s.ID || h.State != string(tc.s.State) || !h.CreatedAt.Equal(tc.s.CreatedAt) || !h.UpdatedAt.Equal(wantUpdated) {
				t.Errorf("Harbor read %+v from %s", h, b)
			}
			if len(h.Result.JobStates) != 1 || len(h.Result.JobStates[0].Results) != 1 {
				t.Fatalf("job_states %s", b)
			}
			js := h.Result.JobStates[0]
			if js.Error != tc.wantError {
				t.Errorf("error %q, want %q", js.Error, tc.wantError)
			}
			r := js.Results[0]
			if len(r.SuccessTasks) != len(tc.s.Succeeded) || len(r.FailureTasks) != len(tc.s.Failed) || r.SchedulerClusterID != tc.s.ClusterID {
				t.Errorf("results %s", b)
			}
			for i, s := range r.SuccessTasks {
				if w := tc.s.Succeeded[i]; s.URL != w.URL || s.Hostname != w.Hostname || s.IP != w.IP {
					t.Errorf("success_tasks[%d] = %+v, want %+v", i, s, w)
				}
			}
			for i, f := range r.FailureTasks {
				if w := tc.s.Failed[i]; f.URL != w.URL || f.Hostname != w.Hostname || f.IP != w.IP || f.Description != w.Description {
					t.Errorf("failure_tasks[%d] = %+v, want %+v", i, f, w)
				}
			}
		})
	}
}

func TestEncodeJobRefuses(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, s := range map[string]Status{
		"zero id":       {State: StatePending, CreatedAt: now},
		"negative id":   {ID: -1, State: StatePending, CreatedAt: now},
		"unknown state": {ID: 1, State: "RUNNING", CreatedAt: now},
		"no state":      {ID: 1, CreatedAt: now},
		"no time":       {ID: 1, State: StateSuccess},
		"year 10000":    {ID: 1, State: StateSuccess, CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if b, err := EncodeJob(s); err == nil {
			t.Errorf("%s: encoded %s", name, b)
		}
	}
}
