// Package warmfeed is how a preheat of scope all_peers reaches every agent: the proxy
// posts each blob to warm on the trackers' board, agents poll the board, fetch what it
// lists through their normal pull path (the swarm, so agents share pieces and origins
// serve only what no agent has yet) and report back, and the proxy counts an agent warm
// when its report arrives. Agents on a node's localhost are not reachable from the
// proxy, but every agent reaches a tracker: so the agents pull, nobody pushes.
//
// The Board is the pure core the tracker serves (no I/O, a clock passed in); Client is
// its HTTP client, Follower the agent's loop, Publisher the proxy's preheat.AgentWarmer.
// The board lives in the tracker's memory: a restarted tracker starts a new epoch, its
// followers read the board again from the start and the publishers post again, so a
// restart costs one poll interval, never a lost warm.
package warmfeed

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Intent is one blob every live agent should hold, until Expires.
type Intent struct {
	Digest digest.Digest `json:"digest"`
	// Repository is the repository the preheat named: the namespace the agent fetches
	// in (origins on a pull-through backend need it for a blob they lack).
	Repository string    `json:"repository,omitempty"`
	Expires    time.Time `json:"expires"`
	// Again asks agents that read the blob already to read it again (a new preheat of
	// it: an agent that failed it, or has evicted it since, tries again); without it a
	// blob already listed keeps its place.
	Again bool `json:"again,omitempty"`
}

// Item is an Intent on the board, numbered in the order first posted.
type Item struct {
	Seq uint64 `json:"seq"`
	Intent
}

// Agent names one agent. ID is unique in the cluster (its host name or P2P address and
// port); Name is for people (the node's host name).
type Agent struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// AgentStatus is a live agent and when it last polled.
type AgentStatus struct {
	Agent
	LastSeen time.Time `json:"last_seen"`
}

// Report is an agent's outcome for one blob: held (OK), or why not.
type Report struct {
	Agent  string        `json:"agent"`
	Digest digest.Digest `json:"digest"`
	OK     bool          `json:"ok"`
	Error  string        `json:"error,omitempty"`
	// At is when the tracker received it (set by the board, not the agent).
	At time.Time `json:"at"`
}

// Feed is a poll's answer: the items after the poll's seq, and the board's epoch,
// which changes when the board starts over (a restarted tracker).
type Feed struct {
	Epoch string `json:"epoch"`
	Items []Item `json:"items"`
	// Next is the seq to poll after next time.
	Next uint64 `json:"next"`
}

// Board limits and defaults.
const (
	// DefaultAgentTTL is how long an agent that stopped polling counts as live.
	DefaultAgentTTL = 30 * time.Second
	// ReportTTL is how long a report is kept: a job's timeout (30m by default) and a
	// margin, so a job waiting for it finds it.
	ReportTTL = time.Hour
	// MaxIntents bounds the board's live intents (each a few hundred bytes).
	MaxIntents = 10000
	// MaxAgents bounds the agents tracked.
	MaxAgents = 100000
	// MaxReports bounds the reports kept (each ~200 bytes: 200 MB at most).
	MaxReports = 1000000
	// MaxIDLength bounds agent ids and names.
	MaxIDLength = 255
	// MaxErrorLength bounds a report's error text.
	MaxErrorLength = 1024
)

// ErrInvalid is wrapped by the board's refusals of bad input; ErrFull by its refusals
// past a bound.
var (
	ErrInvalid = errors.New("warmfeed: invalid request")
	ErrFull    = errors.New("warmfeed: board full")
)

// Board is the warm feed's state. Safe for concurrent use; it does no I/O and reads
// time only from its arguments.
type Board struct {
	epoch    string
	agentTTL time.Duration

	mu      sync.Mutex
	seq     uint64
	items   []Item // in seq order
	byD     map[digest.Digest]int
	agents  map[string]AgentStatus
	reports map[digest.Digest]map[string]Report
	nRep    int
}

// NewBoard returns an empty board of the given epoch (unique per board: a tracker
// makes it random at start); agents stay live for agentTTL (0: DefaultAgentTTL) after
// their last poll.
func NewBoard(epoch string, agentTTL time.Duration) *Board {
	if agentTTL <= 0 {
		agentTTL = DefaultAgentTTL
	}
	return &Board{epoch: epoch, agentTTL: agentTTL, byD: map[digest.Digest]int{},
		agents: map[string]AgentStatus{}, reports: map[digest.Digest]map[string]Report{}}
}

// Epoch is the board's epoch.
func (b *Board) Epoch() string { return b.epoch }

// Publish posts in. A digest already on the board keeps its item (and seq), its expiry
// moved to the later of the two, so publishing again is how a publisher keeps it; with
// in.Again it moves to a new seq at the end instead, so every follower reads it again.
func (b *Board) Publish(in Intent, now time.Time) (Item, error) {
	if err := in.Digest.Validate(); err != nil {
		return Item{}, fmt.Errorf("%w: digest %q: %w", ErrInvalid, in.Digest, err)
	}
	if !in.Expires.After(now) {
		return Item{}, fmt.Errorf("%w: %s expires at %s, not after now", ErrInvalid, in.Digest, in.Expires.UTC().Format(time.RFC3339))
	}
	if len(in.Repository) > MaxIDLength {
		return Item{}, fmt.Errorf("%w: repository of %d bytes (at most %d)", ErrInvalid, len(in.Repository), MaxIDLength)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if i, ok := b.byD[in.Digest]; ok {
		it := &b.items[i]
		if in.Expires.After(it.Expires) {
			it.Expires = in.Expires
		}
		if !in.Again {
			return *it, nil
		}
		in.Expires = it.Expires
		b.items = slices.Delete(b.items, i, i+1)
		for j := i; j < len(b.items); j++ {
			b.byD[b.items[j].Digest] = j
		}
		delete(b.byD, in.Digest)
	}
	if len(b.items) >= MaxIntents {
		return Item{}, fmt.Errorf("%w: %d blobs to warm already (at most %d)", ErrFull, len(b.items), MaxIntents)
	}
	b.seq++
	in.Again = false
	it := Item{Seq: b.seq, Intent: in}
	b.byD[in.Digest] = len(b.items)
	b.items = append(b.items, it)
	return it, nil
}

// Poll records that a polled now and returns the items after seq after. A poll naming
// another epoch (or none) gets every item: the board it read has gone.
func (b *Board) Poll(a Agent, epoch string, after uint64, now time.Time) (Feed, error) {
	if err := validAgent(a); err != nil {
		return Feed{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, known := b.agents[a.ID]; !known && len(b.agents) >= MaxAgents {
		return Feed{}, fmt.Errorf("%w: %d agents tracked already (at most %d)", ErrFull, len(b.agents), MaxAgents)
	}
	b.agents[a.ID] = AgentStatus{Agent: a, LastSeen: now}
	if epoch != b.epoch || after > b.seq {
		after = 0
	}
	f := Feed{Epoch: b.epoch, Next: b.seq, Items: []Item{}}
	// items are in seq order: the first after `after` is found by binary search.
	i, _ := slices.BinarySearchFunc(b.items, after+1, func(it Item, seq uint64) int {
		return compareSeq(it.Seq, seq)
	})
	for _, it := range b.items[i:] {
		if it.Expires.After(now) {
			f.Items = append(f.Items, it)
		}
	}
	return f, nil
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Report records r (its At set to now), replacing that agent's earlier report of the
// same blob.
func (b *Board) Report(r Report, now time.Time) error {
	if err := validAgent(Agent{ID: r.Agent}); err != nil {
		return err
	}
	if err := r.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %w", ErrInvalid, r.Digest, err)
	}
	if r.OK && r.Error != "" {
		return fmt.Errorf("%w: a report is ok or has an error, not both", ErrInvalid)
	}
	if len(r.Error) > MaxErrorLength {
		r.Error = r.Error[:MaxErrorLength]
	}
	r.At = now
	b.mu.Lock()
	defer b.mu.Unlock()
	byAgent := b.reports[r.Digest]
	if _, ok := byAgent[r.Agent]; !ok {
		if b.nRep >= MaxReports {
			return fmt.Errorf("%w: %d reports kept already (at most %d)", ErrFull, b.nRep, MaxReports)
		}
		if byAgent == nil {
			byAgent = map[string]Report{}
			b.reports[r.Digest] = byAgent
		}
		b.nRep++
	}
	byAgent[r.Agent] = r
	return nil
}

// Reports returns every kept report of d, by agent id.
func (b *Board) Reports(d digest.Digest, now time.Time) []Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Report, 0, len(b.reports[d]))
	for _, r := range b.reports[d] {
		if now.Sub(r.At) <= ReportTTL {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y Report) int { return strings.Compare(x.Agent, y.Agent) })
	return out
}

// Agents returns the live agents, by id.
func (b *Board) Agents(now time.Time) []AgentStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]AgentStatus, 0, len(b.agents))
	for _, a := range b.agents {
		if now.Sub(a.LastSeen) <= b.agentTTL {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y AgentStatus) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Stats counts what the board holds.
type Stats struct{ Intents, Agents, Reports int }

// Expire drops what is past its time and returns what is left. Reads skip what is past
// its time already; Expire, called every few seconds, frees the memory.
func (b *Board) Expire(now time.Time) Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expireLocked(now)
	return Stats{Intents: len(b.items), Agents: len(b.agents), Reports: b.nRep}
}

func (b *Board) expireLocked(now time.Time) {
	kept := b.items[:0]
	for _, it := range b.items {
		if it.Expires.After(now) {
			kept = append(kept, it)
		}
	}
	if len(kept) != len(b.items) {
		clear(b.items[len(kept):])
		b.items = kept
		clear(b.byD)
		for i, it := range b.items {
			b.byD[it.Digest] = i
		}
	}
	for id, a := range b.agents {
		if now.Sub(a.LastSeen) > b.agentTTL {
			delete(b.agents, id)
		}
	}
	for d, byAgent := range b.reports {
		for id, r := range byAgent {
			if now.Sub(r.At) > ReportTTL {
				delete(byAgent, id)
				b.nRep--
			}
		}
		if len(byAgent) == 0 {
			delete(b.reports, d)
		}
	}
}

func validAgent(a Agent) error {
	switch {
	case a.ID == "":
		return fmt.Errorf("%w: no agent id", ErrInvalid)
	case len(a.ID) > MaxIDLength || len(a.Name) > MaxIDLength:
		return fmt.Errorf("%w: agent id or name over %d bytes", ErrInvalid, MaxIDLength)
	case strings.ContainsFunc(a.ID+a.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%w: agent id or name with control characters", ErrInvalid)
	}
	return nil
}
