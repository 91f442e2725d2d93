// Package notification decodes the registry event notifications that start a preheat:
// Harbor's Kraken-provider body and the docker/distribution notification envelope, and
// picks the events that trigger work. It is pure: no I/O beyond reading the body it is
// given, no clock.
//
// The two shapes are one set of keys in two spellings:
//
//	Harbor (kraken provider)            docker/distribution (v2 and v3)
//	{"Events":[{"Id","TimeStamp",       {"events":[{"id","timestamp","action",
//	  "Action","Target":{"MediaType",     "target":{"mediaType","digest","size","length",
//	  "Digest","Repository","Url","Tag"},   "repository","fromRepository","url","tag",
//	  "Request":null,"Actor":null}]}        "references":[...]},
//	                                      "request":{...},"actor":{...},"source":{...}}]}
//
// encoding/json matches keys case-insensitively, so one set of structs reads both.
// Harbor sends one event per POST; distribution may send several, blob events included.
//
// Invariant: Decode fails only on a body that is not a notification at all (bad JSON,
// wrong content type, no events array, over MaxBodySize); Triggers fails only on a
// push of a manifest it cannot act on. Every other event is acknowledged and ignored,
// because distribution retries a refused envelope forever.
package notification

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// MaxBodySize bounds a notification body. Harbor's is about 420 bytes per event and
// distribution's default threshold sends a few events per envelope, so 1 MiB is
// thousands of events: more is a mistake or an attack, refused with ErrTooLarge.
const MaxBodySize = 1 << 20

// Content types a notification may carry. Harbor sends application/json;
// distribution v2 sends the v1 events type, distribution v3 the v2 one.
const (
	ContentTypeJSON     = "application/json"
	ContentTypeEventsV1 = "application/vnd.docker.distribution.events.v1+json"
	ContentTypeEventsV2 = "application/vnd.docker.distribution.events.v2+json"
)

// ActionPush is the action of an event that stored something. Distribution also sends
// pull, mount and delete, which never trigger work.
const ActionPush = "push"

var (
	// ErrInvalid is wrapped by every refusal of a body that is not a usable
	// notification (the handler answers 400 with the message).
	ErrInvalid = errors.New("invalid notification")
	// ErrTooLarge is wrapped when the body exceeds MaxBodySize (413).
	ErrTooLarge = errors.New("notification too large")
)

// Envelope is a decoded notification body.
type Envelope struct {
	Events []Event `json:"events"`
}

// Event is one registry event. Fields a sender leaves out, or sends as null, are zero.
type Event struct {
	ID string `json:"id"`
	// Timestamp is RFC 3339 with 0-9 fraction digits (Go's RFC3339Nano trims
	// trailing zeros); zero when absent or unparsable (see TimestampError).
	Timestamp time.Time `json:"-"`
	// TimestampError says why a present timestamp did not parse; empty otherwise.
	// Only a triggering event is refused for it (see Triggers).
	TimestampError string   `json:"-"`
	Action         string   `json:"action"`
	Target         Target   `json:"target"`
	Request        *Request `json:"request"`
	Actor          *Actor   `json:"actor"`
	Source         *Source  `json:"source"`
}

// Target is what an event is about. Harbor fills MediaType, Digest, Repository, URL
// and Tag only, and MediaType is always the docker v2 manifest type.
type Target struct {
	MediaType      string `json:"mediaType"`
	Digest         string `json:"digest"`
	Size           *int64 `json:"size"`   // nil when absent (Harbor)
	Length         *int64 `json:"length"` // distribution's older name for size
	Repository     string `json:"repository"`
	FromRepository string `json:"fromRepository"` // the source of a mount
	// URL is where the target can be fetched; Harbor's key is "Url".
	URL        string       `json:"url"`
	Tag        string       `json:"tag"`
	References []Descriptor `json:"references"`
}

// Descriptor is a reference of a manifest target (distribution only).
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// Request describes the HTTP request that caused an event (distribution only).
type Request struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Host      string `json:"host"`
	Method    string `json:"method"`
	UserAgent string `json:"useragent"`
}

// Actor is who caused an event (distribution only).
type Actor struct {
	Name string `json:"name"`
}

// Source is the registry instance that sent an event (distribution only).
type Source struct {
	Addr       string `json:"addr"`
	InstanceID string `json:"instanceID"`
}

// wireEvent reads the timestamp as text, so that one bad timestamp on an event
// Shoal ignores does not refuse the envelope.
type wireEvent struct {
	Event
	Timestamp *string `json:"timestamp"`
}

// Decode reads a notification body of content type contentType (the request's
// Content-Type header, parameters allowed) from r, reading at most MaxBodySize+1
// bytes. Errors wrap ErrInvalid or ErrTooLarge and say in one line what is wrong.
func Decode(contentType string, r io.Reader) (Envelope, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return Envelope{}, fmt.Errorf("%w: Content-Type %s: %v", ErrInvalid, oci.QuoteInput(contentType), err)
	}
	switch strings.ToLower(mt) {
	case ContentTypeJSON, ContentTypeEventsV1, ContentTypeEventsV2:
	case "":
		return Envelope{}, fmt.Errorf("%w: no Content-Type (send %s, %s or %s)", ErrInvalid, ContentTypeJSON, ContentTypeEventsV1, ContentTypeEventsV2)
	default:
		return Envelope{}, fmt.Errorf("%w: Content-Type %s is not a notification (send %s, %s or %s)", ErrInvalid, oci.QuoteInput(mt), ContentTypeJSON, ContentTypeEventsV1, ContentTypeEventsV2)
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if err != nil {
		return Envelope{}, fmt.Errorf("read notification body: %w", err)
	}
	if len(body) > MaxBodySize {
		return Envelope{}, fmt.Errorf("%w: body over the %d byte limit", ErrTooLarge, MaxBodySize)
	}
	var wire struct {
		Events *[]wireEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return Envelope{}, fmt.Errorf("%w: not a JSON notification: %s", ErrInvalid, oci.OneLine(err.Error()))
	}
	if wire.Events == nil {
		return Envelope{}, fmt.Errorf("%w: no events array (want {\"events\":[...]} or Harbor's {\"Events\":[...]})", ErrInvalid)
	}
	env := Envelope{Events: make([]Event, 0, len(*wire.Events))}
	for _, w := range *wire.Events {
		e := w.Event
		if w.Timestamp != nil && *w.Timestamp != "" {
			t, err := time.Parse(time.RFC3339Nano, *w.Timestamp)
			if err != nil {
				e.TimestampError = fmt.Sprintf("timestamp %s is not RFC 3339", oci.QuoteInput(*w.Timestamp))
			} else {
				e.Timestamp = t
			}
		}
		env.Events = append(env.Events, e)
	}
	return env, nil
}

// Trigger is a push of a manifest: the work one event asks for.
type Trigger struct {
	EventID    string
	Repository string
	// Digest is the pushed manifest's; its media type is unknown (Harbor always
	// claims a docker v2 manifest, even for an index): read the manifest to learn it.
	Digest digest.Digest
	Tag    string // empty for a push by digest
	// Host is the host[:port] of the target's URL, naming the registry that holds
	// the manifest; empty when the event has no URL (distribution may omit it).
	Host string
}

// manifestTypes are the media types that mark an event's target as a manifest.
// Docker schema 1 is not among them: Shoal does not store it.
var manifestTypes = []string{oci.MediaTypeDockerManifest, oci.MediaTypeDockerList, oci.MediaTypeOCIManifest, oci.MediaTypeOCIIndex}

// IsManifestPush reports whether e is a push of a manifest, the only event that
// triggers work.
func IsManifestPush(e Event) bool {
	if !strings.EqualFold(e.Action, ActionPush) {
		return false
	}
	mt, _, err := mime.ParseMediaType(e.Target.MediaType)
	if err != nil {
		return false
	}
	for _, t := range manifestTypes {
		if mt == t {
			return true
		}
	}
	return false
}

// Triggers returns the work env asks for, one Trigger per push of a manifest, in
// order; other events are ignored. A push of a manifest that cannot be acted on (an
// invalid digest, repository, tag, URL or timestamp) fails the whole envelope with
// an error wrapping ErrInvalid that names the event, so no part of a bad batch runs.
func Triggers(env Envelope) ([]Trigger, error) {
	var out []Trigger
	for i, e := range env.Events {
		if !IsManifestPush(e) {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: events[%d] (push of %s): %s", ErrInvalid, i, oci.QuoteInput(e.Target.Repository), fmt.Sprintf(format, args...))
		}
		d, err := digest.Parse(e.Target.Digest)
		if err != nil {
			return nil, bad("target digest %s: %v", oci.QuoteInput(e.Target.Digest), err)
		}
		if !oci.ValidName(e.Target.Repository) {
			return nil, bad("target repository is not a valid repository name")
		}
		if e.Target.Tag != "" && !oci.ValidTag(e.Target.Tag) {
			return nil, bad("target tag %s is not a valid tag", oci.QuoteInput(e.Target.Tag))
		}
		if e.TimestampError != "" {
			return nil, bad("%s", e.TimestampError)
		}
		var host string
		if e.Target.URL != "" {
			u, err := url.Parse(e.Target.URL)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, bad("target url %s is not an absolute http(s) URL", oci.QuoteInput(e.Target.URL))
			}
			host = u.Host
		}
		out = append(out, Trigger{EventID: e.ID, Repository: e.Target.Repository, Digest: d, Tag: e.Target.Tag, Host: host})
	}
	return out, nil
}
