// Package dragonfly holds the wire types of the Dragonfly manager's job API, the subset
// Harbor's "dragonfly" P2P provider speaks (Harbor >= 2.12), so that Shoal can stand
// in for Dragonfly: decoding and validating a preheat job request, and encoding a job's
// status the way Harbor parses it. It is pure: no I/O beyond reading the body it is
// given, no clock.
//
//	POST /oapi/v1/jobs      CreateRequest in  -> Job out (Harbor needs an integer id)
//	GET  /oapi/v1/jobs/{id}                   -> Job out (Harbor polls every 10 s while
//	                                             PENDING, for up to 1801 s)
//
// Harbor sends every key (no omitempty), lowercase, and fills only type, args.type,
// args.url, args.headers (its pull token for the registry), and, when the policy's
// extra attributes say so, args.scope and scheduler_cluster_ids. args.tag,
// filtered_query_params, concurrent_count and timeout are always zero values.
package dragonfly

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/shoal-p2p/shoal/lib/oci"
	"github.com/shoal-p2p/shoal/lib/preheat"
)

// MaxBodySize bounds a create request body: Harbor's is a few hundred bytes plus a
// pull token of a few KiB.
const MaxBodySize = 1 << 20

var (
	// ErrInvalid is wrapped by every refusal of a create request (the handler answers
	// 400 with the message, which says in one line what is wrong).
	ErrInvalid = errors.New("invalid preheat job")
	// ErrTooLarge is wrapped when the body exceeds MaxBodySize (413).
	ErrTooLarge = errors.New("preheat job too large")
)

// CreateRequest is the body of POST /oapi/v1/jobs, as Harbor marshals it.
type CreateRequest struct {
	Type string `json:"type"` // "preheat"
	Args Args   `json:"args"`
	// SchedulerClusterIDs narrows a Dragonfly job to some clusters; null means all.
	// Shoal is one cluster, so it records them and ignores them.
	SchedulerClusterIDs []uint `json:"scheduler_cluster_ids"`
}

// Args are a preheat job's arguments.
type Args struct {
	Type string `json:"type"` // "image"; Harbor sends it for cnai (model) artifacts too
	// URL is the manifest's URL on its registry (Harbor's own, in practice).
	URL string `json:"url"`
	// Tag and FilteredQueryParams shape Dragonfly's task ids; Shoal has no such ids.
	Tag                 string `json:"tag"`
	FilteredQueryParams string `json:"filtered_query_params"`
	// Headers go with every request to the registry: Harbor puts a pull token here.
	Headers map[string]string `json:"headers"`
	// Scope is a preheat.Scope; "" (Harbor's unless the policy sets one) is
	// preheat.DefaultScope, every owner origin, deeper than Dragonfly's default.
	Scope           string `json:"scope"`
	ConcurrentCount int64  `json:"concurrent_count"`
	// Timeout is a Go time.Duration, so integer nanoseconds on the wire.
	Timeout time.Duration `json:"timeout"`
}

// Preheat is a validated create request.
type Preheat struct {
	URL        string // args.url as sent
	Scheme     string // "http" or "https"
	Host       string // the registry's host[:port]
	Repository string
	Reference  oci.Reference
	// Headers are args.headers, canonicalised; send them to Host only.
	Headers             http.Header
	Scope               preheat.Scope // never "": "" is preheat.DefaultScope
	SchedulerClusterIDs []uint
	ConcurrentCount     int64         // 0: unset
	Timeout             time.Duration // 0: unset
}

// DecodeCreate reads and validates a create request body from r, reading at most
// MaxBodySize+1 bytes. Unknown keys are ignored (Dragonfly's API has more than Harbor
// sends). Errors wrap ErrInvalid or ErrTooLarge and name the key at fault.
func DecodeCreate(r io.Reader) (Preheat, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		return Preheat{}, fmt.Errorf("read preheat job body: %w", err)
	}
	if len(body) > MaxBodySize {
		return Preheat{}, fmt.Errorf("%w: body over the %d byte limit", ErrTooLarge, MaxBodySize)
	}
	var req CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return Preheat{}, fmt.Errorf("%w: not a JSON job request: %s", ErrInvalid, oci.OneLine(err.Error()))
	}
	return Validate(req)
}

// Validate checks req and returns it parsed. Errors wrap ErrInvalid.
func Validate(req CreateRequest) (Preheat, error) {
	bad := func(format string, args ...any) (Preheat, error) {
		return Preheat{}, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	if req.Type != "preheat" {
		return bad(`type %s: only "preheat" jobs are supported`, oci.QuoteInput(req.Type))
	}
	a := req.Args
	if a.Type != "image" {
		return bad(`args.type %s: only "image" is supported (Shoal preheats registry content)`, oci.QuoteInput(a.Type))
	}
	p := Preheat{URL: a.URL, SchedulerClusterIDs: req.SchedulerClusterIDs, ConcurrentCount: a.ConcurrentCount, Timeout: a.Timeout}
	u, err := url.Parse(a.URL)
	switch {
	case a.URL == "":
		return bad("args.url: empty (want <scheme>://<host>/v2/<name>/manifests/<reference>)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return bad("args.url %s is not an absolute http(s) URL", oci.QuoteInput(a.URL))
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return bad("args.url %s has a user, query or fragment (credentials go in args.headers)", oci.QuoteInput(a.URL))
	}
	p.Scheme, p.Host = u.Scheme, u.Host
	rest, ok := strings.CutPrefix(u.Path, "/v2/")
	i := strings.LastIndex(rest, "/manifests/")
	if !ok || i <= 0 {
		return bad("args.url %s is not a manifest URL (want <scheme>://<host>/v2/<name>/manifests/<reference>)", oci.QuoteInput(a.URL))
	}
	p.Repository, rest = rest[:i], rest[i+len("/manifests/"):]
	if !oci.ValidName(p.Repository) {
		return bad("args.url %s: %s is not a valid repository name", oci.QuoteInput(a.URL), oci.QuoteInput(p.Repository))
	}
	if p.Reference, err = oci.ParseReference(rest); err != nil {
		return bad("args.url %s: reference %s is neither a tag nor a sha256 digest", oci.QuoteInput(a.URL), oci.QuoteInput(rest))
	}
	if p.Scope, err = preheat.ParseScope(a.Scope); err != nil {
		return bad("args.scope %s: want %s, %s, %s, or empty for %s", oci.QuoteInput(a.Scope),
			preheat.ScopeSingleSeedPeer, preheat.ScopeAllSeedPeers, preheat.ScopeAllPeers, preheat.DefaultScope)
	}
	if a.ConcurrentCount < 0 {
		return bad("args.concurrent_count %d is negative", a.ConcurrentCount)
	}
	if a.Timeout < 0 {
		return bad("args.timeout %d is negative (nanoseconds)", a.Timeout)
	}
	p.Headers = make(http.Header, len(a.Headers))
	for k, v := range a.Headers {
		// These are forwarded to a registry: a broken one would fail there, later
		// and less clearly, or split a request.
		if !httpguts.ValidHeaderFieldName(k) {
			return bad("args.headers: %s is not a valid header name", oci.QuoteInput(k))
		}
		if !validHeaderValue(v) {
			return bad("args.headers[%s]: value holds control characters", oci.QuoteInput(k))
		}
		p.Headers.Set(k, v)
	}
	return p, nil
}

// validHeaderValue reports whether s holds no control character but tab.
func validHeaderValue(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// State is a job's state as Harbor reads it: PENDING keeps it polling, SUCCESS and
// FAILURE end the task, anything else fails it.
type State string

// The job states.
const (
	StatePending State = "PENDING"
	StateSuccess State = "SUCCESS"
	StateFailure State = "FAILURE"
)

// Status is what Shoal knows of a job, free of Dragonfly's nesting.
type Status struct {
	ID    int64 // > 0; Harbor takes it as its task id
	State State
	// CreatedAt is required; UpdatedAt zero means CreatedAt.
	CreatedAt, UpdatedAt time.Time
	// Error says why a FAILURE failed; empty makes one from Failed.
	Error string
	// Succeeded and Failed name each host (origin or agent) the job warmed or failed
	// to; Harbor shows them as a table on SUCCESS.
	Succeeded []Task
	Failed    []Task
	// ClusterID is reported as the tasks' scheduler_cluster_id (Shoal is one cluster).
	ClusterID uint
}

// Task is one host's part of a job.
type Task struct {
	URL         string // what was warmed there (the image's or a blob's URL)
	Hostname    string
	IP          string
	Description string // why it failed; failures only
}

// Job is the job object of both answers, shaped as Harbor's dragonflyJobResponse.
type Job struct {
	ID        int64     `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	State     State     `json:"state"`
	Result    Result    `json:"result"`
}

// Result holds a job's per-cluster outcome.
type Result struct {
	JobStates []JobState `json:"job_states"`
}

// JobState is one group of a job's work.
type JobState struct {
	Error   string          `json:"error"`
	Results []ClusterResult `json:"results"`
}

// ClusterResult is a job's outcome in one scheduler cluster.
type ClusterResult struct {
	SuccessTasks       []SuccessTask `json:"success_tasks"`
	FailureTasks       []FailureTask `json:"failure_tasks"`
	SchedulerClusterID uint          `json:"scheduler_cluster_id"`
}

// SuccessTask is one host that holds the content.
type SuccessTask struct {
	URL      string `json:"url"`
	Hostname string `json:"hostname"`
	IP       string `json:"ip"`
}

// FailureTask is one host that failed to.
type FailureTask struct {
	URL         string `json:"url"`
	Hostname    string `json:"hostname"`
	IP          string `json:"ip"`
	Description string `json:"description"`
}

// NewJob builds the wire job from s. Harbor refuses a string id and an empty or
// non-RFC 3339 time, so s must have a positive id, a known state and a creation time.
func NewJob(s Status) (Job, error) {
	switch {
	case s.ID <= 0:
		return Job{}, fmt.Errorf("dragonfly job: id %d is not positive", s.ID)
	case s.State != StatePending && s.State != StateSuccess && s.State != StateFailure:
		return Job{}, fmt.Errorf("dragonfly job %d: state %q is not PENDING, SUCCESS or FAILURE", s.ID, s.State)
	case s.CreatedAt.IsZero():
		return Job{}, fmt.Errorf("dragonfly job %d: no creation time", s.ID)
	}
	updated := s.UpdatedAt
	if updated.IsZero() {
		updated = s.CreatedAt
	}
	cr := ClusterResult{SuccessTasks: []SuccessTask{}, FailureTasks: []FailureTask{}, SchedulerClusterID: s.ClusterID}
	for _, t := range s.Succeeded {
		cr.SuccessTasks = append(cr.SuccessTasks, SuccessTask{URL: t.URL, Hostname: t.Hostname, IP: t.IP})
	}
	for _, t := range s.Failed {
		cr.FailureTasks = append(cr.FailureTasks, FailureTask{URL: t.URL, Hostname: t.Hostname, IP: t.IP, Description: t.Description})
	}
	msg := s.Error
	if msg == "" && s.State == StateFailure {
		// Harbor shows only job_states[].error for a FAILURE: never leave it blank.
		msg = "preheat failed"
		if n := len(s.Failed); n > 0 {
			msg = fmt.Sprintf("preheat failed on %d host(s); %s: %s", n, s.Failed[0].Hostname, s.Failed[0].Description)
		}
	}
	return Job{
		ID:        s.ID,
		CreatedAt: s.CreatedAt.UTC(),
		UpdatedAt: updated.UTC(),
		State:     s.State,
		Result:    Result{JobStates: []JobState{{Error: msg, Results: []ClusterResult{cr}}}},
	}, nil
}

// EncodeJob is NewJob marshalled to JSON.
func EncodeJob(s Status) ([]byte, error) {
	j, err := NewJob(s)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("dragonfly job %d: encode: %w", s.ID, err)
	}
	return b, nil
}
