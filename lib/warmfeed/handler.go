package warmfeed

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
)

// maxRequestBody bounds a board request body (an intent, poll or report is well
// under 4 KiB).
const maxRequestBody = 64 << 10

// Routes mounts the board's HTTP API (the Path constants) on r; the tracker serves it.
// now is the board's clock.
func Routes(r chi.Router, b *Board, now func() time.Time) {
	h := handlers{b: b, now: now}
	r.Post(PathIntents, h.handle(h.publish))
	r.Post(PathPoll, h.handle(h.poll))
	r.Post(PathReports, h.handle(h.report))
	r.Get(PathReports, h.handle(h.reports))
	r.Get(PathAgents, h.handle(h.agents))
}

type handlers struct {
	b   *Board
	now func() time.Time
}

// errorBody is the answer to a refused request (the tracker's error shape).
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (h handlers) handle(f func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r)
		if err != nil {
			status, code := http.StatusInternalServerError, "internal"
			switch {
			case errors.Is(err, ErrInvalid):
				status, code = http.StatusBadRequest, "bad_request"
			case errors.Is(err, ErrFull):
				status, code = http.StatusServiceUnavailable, "full"
			}
			writeJSON(w, status, errorBody{Error: code, Message: err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decode reads r's JSON body into v, refusing an oversized or malformed body, or
// trailing data, as ErrInvalid.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: data after the JSON value", ErrInvalid)
	}
	if dec.InputOffset() > maxRequestBody {
		return fmt.Errorf("%w: body over %d bytes", ErrInvalid, maxRequestBody)
	}
	return nil
}

func (h handlers) publish(r *http.Request) (any, error) {
	var in Intent
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return h.b.Publish(in, h.now())
}

func (h handlers) poll(r *http.Request) (any, error) {
	var p PollRequest
	if err := decode(r, &p); err != nil {
		return nil, err
	}
	return h.b.Poll(p.Agent, p.Epoch, p.After, h.now())
}

func (h handlers) report(r *http.Request) (any, error) {
	var rep Report
	if err := decode(r, &rep); err != nil {
		return nil, err
	}
	if err := h.b.Report(rep, h.now()); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (h handlers) reports(r *http.Request) (any, error) {
	d, err := digest.Parse(r.URL.Query().Get("digest"))
	if err != nil {
		return nil, fmt.Errorf("%w: digest %q: %w", ErrInvalid, r.URL.Query().Get("digest"), err)
	}
	return h.b.Reports(d, h.now()), nil
}

func (h handlers) agents(*http.Request) (any, error) {
	return h.b.Agents(h.now()), nil
}
