// Package oci holds the OCI distribution API's vocabulary: the error code table,
// repository name and reference rules, and manifest parsing and validation. It is pure:
// no I/O, so both the proxy's and the agent's registry share one set of rules.
package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code is one entry of the distribution spec's error code table.
type Code struct {
	Name    string // e.g. "BLOB_UNKNOWN"
	Status  int
	Message string
}

// The error codes Shoal answers with (distribution-spec "Error Codes", plus
// distribution's RANGE_INVALID, UNSUPPORTED, TOOMANYREQUESTS and UNKNOWN). A code the
// spec answers with two statuses has one entry per status.
var (
	CodeBlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	CodeBlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	CodeBlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	CodeDigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	CodeManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"}
	CodeManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	CodeManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	CodeNameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	CodeNameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	CodeSizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	CodeRangeInvalid        = Code{"RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable, "invalid content range"}
	CodeUnsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"}
	CodePaginationInvalid   = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}
	CodeTooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests"}
	CodeUnauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required"}
	CodeDenied              = Code{"DENIED", http.StatusForbidden, "requested access to the resource is denied"}
	CodeUnknown             = Code{"UNKNOWN", http.StatusInternalServerError, "unknown error"}

	// CodeManifestTooLarge is MANIFEST_INVALID for a body over the registry's limit:
	// 413, the status the spec gives a refused manifest PUT (end-7).
	CodeManifestTooLarge = Code{"MANIFEST_INVALID", http.StatusRequestEntityTooLarge, "manifest invalid"}
	// CodeStorageFull is a read the registry cannot serve for want of disk space (507,
	// so docker and containerd retry, or fall back to their next mirror); the spec
	// has no code for it.
	CodeStorageFull = Code{"UNKNOWN", http.StatusInsufficientStorage, "registry storage full"}
	// CodeStalled is a read whose source made no progress for the stall timeout
	// before its body started (503: clients retry); the spec has no code for it.
	CodeStalled = Code{"UNKNOWN", http.StatusServiceUnavailable, "transfer stalled"}
	// CodeUnavailable is a request a component the registry needs did not answer
	// (503: clients retry); the spec has no code for it.
	CodeUnavailable = Code{"UNKNOWN", http.StatusServiceUnavailable, "service unavailable"}
)

// Error is an API error: a code and what exactly went wrong.
type Error struct {
	Code   Code
	Detail string
	Err    error // the cause, if any; logged, not sent
}

// NewError builds an Error; cause may be nil.
func NewError(c Code, detail string, cause error) *Error {
	return &Error{Code: c, Detail: detail, Err: cause}
}

func (e *Error) Error() string {
	s := e.Code.Name + ": " + e.Code.Message
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Envelope is the JSON body of every error answer.
type Envelope struct {
	Errors []EnvelopeError `json:"errors"`
}

// EnvelopeError is one entry of Envelope.
type EnvelopeError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// WriteError answers err in the spec's error envelope. An error that is not an *Error is
// answered as UNKNOWN (500); its text is not sent.
func WriteError(w http.ResponseWriter, err error) Code {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Code: CodeUnknown}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.Status)
	_ = json.NewEncoder(w).Encode(Envelope{Errors: []EnvelopeError{{
		Code: e.Code.Name, Message: e.Code.Message, Detail: e.Detail,
	}}})
	return e.Code
}

// QuoteInput quotes s, which a client sent, for an error message: escaped and cut to
// 100 bytes, so a hostile value cannot forge or flood the message.
func QuoteInput(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// OneLine keeps an error message on one line whatever the input it quotes held.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
