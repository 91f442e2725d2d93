package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/oci"
)

func (g *Registry) base(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}

// serve is the one entry and error edge of every /v2/<...> route.
func (g *Registry) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt := parseRoute(strings.TrimPrefix(r.URL.Path, "/v2/"))
	// The repository travels with every fetch this request causes, down to a backend
	// that reads from an upstream registry.
	r = r.WithContext(backend.WithNamespace(r.Context(), rt.name))
	err := g.dispatch(w, r, rt)
	if err == nil {
		return
	}
	if e := (*oci.Error)(nil); errors.As(err, &e) && e.Code == oci.CodeTooManyRequests {
		w.Header().Set("Retry-After", retryAfter)
	}
	code := oci.WriteError(w, err)
	g.opts.Scope.Tagged(map[string]string{"code": code.Name}).Counter("errors").Inc(1)
	fields := []zap.Field{zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err)}
	if code.Status >= 500 {
		g.opts.Log.Error("registry request failed", fields...)
	} else {
		g.opts.Log.Debug("registry request refused", fields...)
	}
}

func (g *Registry) dispatch(w http.ResponseWriter, r *http.Request, rt route) error {
	if rt.kind == kindUnknown {
		return oci.NewError(oci.CodeNameUnknown, "no API route at "+quote(r.URL.Path), nil)
	}
	if writes(rt.kind, r.Method) && g.opts.Uploads == nil {
		return oci.NewError(oci.CodeUnsupported, g.opts.ReadOnlyHint, nil)
	}
	if rt.kind == kindCatalog {
		if r.Method != http.MethodGet {
			return unsupported(r)
		}
		g.count("catalog")
		return g.catalog(w, r)
	}
	if err := rt.checkName(); err != nil {
		return err
	}
	switch {
	case rt.kind == kindTags && r.Method == http.MethodGet:
		g.count("tags_list")
		return g.listTags(w, r, rt.name)
	case rt.kind == kindManifest && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		g.count("manifest_get")
		return g.getManifest(w, r, rt)
	case rt.kind == kindManifest && r.Method == http.MethodPut:
		g.count("manifest_put")
		return g.putManifest(w, r, rt)
	case rt.kind == kindBlob && r.Method == http.MethodHead:
		g.count("blob_head")
		return g.headBlob(w, r, rt)
	case rt.kind == kindBlob && r.Method == http.MethodGet:
		g.count("blob_get")
		return g.getBlob(w, r, rt)
	case rt.kind == kindUploads && r.Method == http.MethodPost:
		g.count("upload_start")
		return g.startUpload(w, r, rt)
	case rt.kind == kindUpload && r.Method == http.MethodGet:
		g.count("upload_status")
		return g.uploadStatus(w, r, rt)
	case rt.kind == kindUpload && r.Method == http.MethodPatch:
		g.count("upload_patch")
		return g.patchUpload(w, r, rt)
	case rt.kind == kindUpload && r.Method == http.MethodPut:
		g.count("upload_put")
		return g.putUpload(w, r, rt)
	case rt.kind == kindUpload && r.Method == http.MethodDelete:
		g.count("upload_cancel")
		return g.cancelUpload(w, r, rt)
	}
	return unsupported(r)
}

func (g *Registry) count(op string) {
	g.opts.Scope.Tagged(map[string]string{"op": op}).Counter("requests").Inc(1)
}

func unsupported(r *http.Request) error {
	return oci.NewError(oci.CodeUnsupported, r.Method+" is not supported on "+quote(r.URL.Path), nil)
}

// unavailableHint ends the detail of an ErrUnavailable answer.
const unavailableHint = "the tag store (build-index) did not answer; try again"

// seamError maps a seam's sentinel to its OCI code; notFound is the code a miss gets
// on this route. Anything else stays an internal error.
func seamError(err error, notFound oci.Code, detail string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return oci.NewError(notFound, detail, err)
	case errors.Is(err, ErrDigestMismatch):
		return oci.NewError(oci.CodeDigestInvalid, detail, err)
	case errors.Is(err, ErrUploadUnknown):
		return oci.NewError(oci.CodeBlobUploadUnknown, detail, err)
	case errors.Is(err, ErrOffsetMismatch):
		return oci.NewError(oci.CodeRangeInvalid, detail, err)
	case errors.Is(err, ErrUnavailable):
		return oci.NewError(oci.CodeUnavailable, detail+": "+unavailableHint, err)
	}
	return fmt.Errorf("%s: %w", detail, err)
}

// --- listings ---

func (g *Registry) catalog(w http.ResponseWriter, r *http.Request) error {
	repos, err := g.opts.Tags.Repositories(r.Context())
	if err != nil {
		return seamError(err, oci.CodeNameUnknown, "catalog")
	}
	page, next, err := paginate(repos, r, g.opts.Limits.MaxListEntries)
	if err != nil {
		return err
	}
	if next != "" {
		w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?%s>; rel="next"`, next))
	}
	return writeJSON(w, map[string]any{"repositories": page})
}

func (g *Registry) listTags(w http.ResponseWriter, r *http.Request, name string) error {
	tags, err := g.opts.Tags.List(r.Context(), name)
	if err != nil {
		return seamError(err, oci.CodeNameUnknown, "repository "+quote(name))
	}
	page, next, err := paginate(tags, r, g.opts.Limits.MaxListEntries)
	if err != nil {
		return err
	}
	if next != "" {
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, name, next))
	}
	return writeJSON(w, map[string]any{"name": name, "tags": page})
}

// paginate applies the spec's n and last to a sorted list; next is the query of the
// following page, empty on the last one. A page holds at most limit entries: a larger
// n, or none, is cut to limit with a Link to the rest, which spec v1.1 allows ("fewer
// than n ... or a Link header is provided"); distribution answers a catalog n over its
// limit PAGINATION_NUMBER_INVALID instead, an error the spec lists for neither route.
func paginate(all []string, r *http.Request, limit int) (page []string, next string, err error) {
	q := r.URL.Query()
	page = all
	if last := q.Get("last"); last != "" {
		i := 0
		for i < len(page) && page[i] <= last {
			i++
		}
		page = page[i:]
	}
	n := limit
	if ns := q.Get("n"); ns != "" {
		asked, err := strconv.Atoi(ns)
		if err != nil || asked < 0 {
			return nil, "", oci.NewError(oci.CodePaginationInvalid, "n must be a number >= 0", nil)
		}
		n = min(asked, limit)
	}
	if len(page) > n {
		page = page[:n]
		if n > 0 {
			next = fmt.Sprintf("n=%d&last=%s", n, url.QueryEscape(page[n-1]))
		}
	}
	if page == nil {
		page = []string{}
	}
	return page, next, nil
}

// --- manifests ---

func (g *Registry) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := oci.ParseReference(rt.arg)
	if err != nil {
		return err
	}
	d := ref.Digest
	if ref.Tag != "" {
		if d, err = g.opts.Tags.Get(r.Context(), rt.name, ref.Tag); err != nil {
			return seamError(err, oci.CodeManifestUnknown, rt.name+":"+ref.Tag)
		}
	}
	unknown := oci.NewError(oci.CodeManifestUnknown, rt.name+"@"+d.String(), nil)
	// A big blob is no manifest: say so without fetching it.
	size, err := g.opts.Blobs.Stat(r.Context(), d)
	if err != nil {
		return seamError(err, oci.CodeManifestUnknown, rt.name+"@"+d.String())
	}
	if size > oci.MaxManifestSize {
		return unknown
	}
	rc, _, err := g.opts.Blobs.Open(r.Context(), d)
	if err != nil {
		return seamError(err, oci.CodeManifestUnknown, rt.name+"@"+d.String())
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, oci.MaxManifestSize+1))
	if err != nil {
		return fmt.Errorf("read manifest %s: %w", d, err)
	}
	if digest.FromBytes(body) != d {
		return fmt.Errorf("read manifest %s: stored bytes do not match the digest", d)
	}
	m, err := oci.ParseManifest("", body)
	if err != nil {
		return unknown // content exists but is a blob, not a manifest
	}
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = w.Write(body)
	return nil
}

func (g *Registry) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	ref, err := oci.ParseReference(rt.arg)
	if err != nil {
		return err
	}
	// Refused before a byte is stored: at once when the length says so, else once the
	// body runs past the limit (a chunked body), without reading the rest.
	limit := g.opts.Limits.MaxManifestBytes
	if r.ContentLength > limit {
		return oci.NewError(oci.CodeManifestTooLarge, fmt.Sprintf("manifest is %d bytes, over the %d byte limit", r.ContentLength, limit), nil)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return oci.NewError(oci.CodeManifestInvalid, "reading the body", err)
	}
	if int64(len(body)) > limit {
		return oci.NewError(oci.CodeManifestTooLarge, fmt.Sprintf("manifest is over the %d byte limit", limit), nil)
	}
	m, err := oci.ParseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	d := digest.FromBytes(body)
	if ref.Digest != "" && ref.Digest != d {
		return oci.NewError(oci.CodeDigestInvalid, fmt.Sprintf("manifest digest is %s, not %s", d, ref.Digest), nil)
	}
	for _, ref := range append(append([]digest.Digest(nil), m.Blobs...), m.Manifests...) {
		if _, err := g.opts.Blobs.Stat(ctx, ref); err != nil {
			return seamError(err, oci.CodeManifestBlobUnknown, ref.String())
		}
	}
	if _, err := g.opts.Blobs.Stat(ctx, d); errors.Is(err, ErrNotFound) {
		if err := g.store(r, d, bytes.NewReader(body)); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("stat manifest %s: %w", d, err)
	}
	if ref.Tag != "" {
		if err := g.opts.Tags.Put(ctx, rt.name, ref.Tag, d); err != nil {
			return seamError(err, oci.CodeNameUnknown, "tag "+rt.name+":"+ref.Tag+" not written (the manifest is stored)")
		}
	}
	h := w.Header()
	h.Set("Location", "/v2/"+rt.name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject.String())
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

// store writes content whose digest is d through one upload session.
func (g *Registry) store(r *http.Request, d digest.Digest, content io.Reader) error {
	ctx := r.Context()
	up := g.opts.Uploads
	id, err := up.Start(ctx)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	if _, err := up.Append(ctx, id, 0, content); err != nil {
		_ = up.Cancel(ctx, id)
		return seamError(err, oci.CodeBlobUploadInvalid, "upload "+d.String())
	}
	if err := up.Commit(ctx, id, d); err != nil {
		_ = up.Cancel(ctx, id)
		return seamError(err, oci.CodeBlobUploadUnknown, "commit "+d.String())
	}
	return nil
}

// --- blobs ---

func (g *Registry) blobDigest(rt route) (digest.Digest, error) { return oci.ParseDigest(rt.arg) }

func blobHeaders(w http.ResponseWriter, d digest.Digest) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Etag", `"`+d.String()+`"`)
}

func (g *Registry) headBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := g.blobDigest(rt)
	if err != nil {
		return err
	}
	size, err := g.opts.Blobs.Stat(r.Context(), d)
	if err != nil {
		return seamError(err, oci.CodeBlobUnknown, d.String())
	}
	blobHeaders(w, d)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	return nil
}

func (g *Registry) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := g.blobDigest(rt)
	if err != nil {
		return err
	}
	rc, _, err := g.opts.Blobs.Open(r.Context(), d)
	if err != nil {
		return seamError(err, oci.CodeBlobUnknown, d.String())
	}
	defer rc.Close()
	if rng := r.Header.Get("Range"); zeroSuffixRange(rng) && r.Header.Get("If-Range") == "" {
		return oci.NewError(oci.CodeRangeInvalid, "Range "+quote(rng)+" asks for the last 0 bytes", nil)
	}
	blobHeaders(w, d)
	// ServeContent answers Range requests (206/416) by seeking the reader.
	rw := &rangeRefusal{ResponseWriter: w, header: r.Header.Get("Range")}
	http.ServeContent(rw, r, "", time.Time{}, rc)
	if rw.refused {
		g.opts.Scope.Tagged(map[string]string{"code": oci.CodeRangeInvalid.Name}).Counter("errors").Inc(1)
	}
	return nil
}

// zeroSuffixRange reports whether a Range header holds a suffix range of zero bytes
// ("bytes=-0"), which RFC 9110 makes unsatisfiable and http.ServeContent answers as a
// 206 of no bytes with a Content-Range whose end is before its start.
func zeroSuffixRange(h string) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	for _, ra := range strings.Split(spec, ",") {
		start, end, ok := strings.Cut(ra, "-")
		if !ok || textproto.TrimString(start) != "" {
			continue
		}
		if n, err := strconv.ParseInt(textproto.TrimString(end), 10, 64); err == nil && n == 0 {
			return true
		}
	}
	return false
}

// rangeRefusal answers http.ServeContent's 416 (a Range header that does not parse or
// overlaps nothing) as RANGE_INVALID in the spec's error envelope, like every other
// refusal, instead of its plain-text body. Other answers pass through; ReadFrom keeps
// the ResponseWriter's own (sendfile) path.
type rangeRefusal struct {
	http.ResponseWriter
	header  string
	refused bool
}

func (w *rangeRefusal) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable || w.refused {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.refused = true
	w.Header().Del("X-Content-Type-Options")
	oci.WriteError(w.ResponseWriter, oci.NewError(oci.CodeRangeInvalid, "Range "+quote(w.header), nil))
}

func (w *rangeRefusal) Write(p []byte) (int, error) {
	if w.refused {
		return len(p), nil // ServeContent's plain-text reason
	}
	return w.ResponseWriter.Write(p)
}

func (w *rangeRefusal) ReadFrom(r io.Reader) (int64, error) {
	if w.refused {
		return io.Copy(io.Discard, r)
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *rangeRefusal) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// --- uploads ---

func uploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", fmt.Sprintf("0-%d", end))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (g *Registry) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		// Blobs are content-addressed cluster-wide: a mount is a stat. A miss falls
		// back to a new session, as the spec allows.
		if d, err := oci.ParseDigest(mount); err == nil {
			if _, err := g.opts.Blobs.Stat(ctx, d); err == nil {
				blobCreated(w, rt.name, d)
				return nil
			}
		}
	}
	// A session counts against its client from here until it ends (sessions); a
	// monolithic upload's for as long as its request.
	who := client(r)
	if err := g.admit(r, who); err != nil {
		return err
	}
	if ds := q.Get("digest"); ds != "" {
		defer g.sessions.unreserve(who)
		d, err := oci.ParseDigest(ds)
		if err != nil {
			return err
		}
		if err := g.store(r, d, r.Body); err != nil {
			return err
		}
		blobCreated(w, rt.name, d)
		return nil
	}
	id, err := g.opts.Uploads.Start(ctx)
	if err != nil {
		g.sessions.unreserve(who)
		return fmt.Errorf("start upload: %w", err)
	}
	g.sessions.started(who, id, g.opts.Now())
	uploadHeaders(w, rt.name, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (g *Registry) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	size, err := g.opts.Uploads.Size(r.Context(), rt.arg)
	g.track(rt.arg, err, false)
	if err != nil {
		return seamError(err, oci.CodeBlobUploadUnknown, "upload "+quote(rt.arg))
	}
	uploadHeaders(w, rt.name, rt.arg, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// appendBody appends the request body at the session's current size, checking a
// Content-Range the client sent.
func (g *Registry) appendBody(r *http.Request, id string) (int64, error) {
	ctx := r.Context()
	size, err := g.opts.Uploads.Size(ctx, id)
	if err != nil {
		return 0, seamError(err, oci.CodeBlobUploadUnknown, "upload "+quote(id))
	}
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != size || (r.ContentLength >= 0 && end-start+1 != r.ContentLength) {
			return 0, oci.NewError(oci.CodeRangeInvalid,
				fmt.Sprintf("Content-Range %q: the upload holds %d bytes, the next chunk must start there", cr, size), nil)
		}
	}
	if r.ContentLength == 0 {
		return size, nil
	}
	n, err := g.opts.Uploads.Append(ctx, id, size, r.Body)
	if err != nil {
		return 0, seamError(err, oci.CodeBlobUploadUnknown, "upload "+quote(id))
	}
	return n, nil
}

// parseContentRange parses an upload chunk's "<start>-<end>" (inclusive).
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "bytes ")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(strings.SplitN(b, "/", 2)[0], 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

func (g *Registry) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	size, err := g.appendBody(r, rt.arg)
	g.track(rt.arg, err, false)
	if err != nil {
		return err
	}
	uploadHeaders(w, rt.name, rt.arg, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (g *Registry) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := oci.ParseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if _, err := g.appendBody(r, rt.arg); err != nil {
		g.track(rt.arg, err, false)
		return err
	}
	err = g.opts.Uploads.Commit(r.Context(), rt.arg, d)
	g.track(rt.arg, err, true)
	if err != nil {
		return seamError(err, oci.CodeBlobUploadUnknown, "commit "+d.String())
	}
	blobCreated(w, rt.name, d)
	return nil
}

func (g *Registry) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	err := g.opts.Uploads.Cancel(r.Context(), rt.arg)
	g.track(rt.arg, err, true)
	if err != nil {
		return seamError(err, oci.CodeBlobUploadUnknown, "upload "+quote(rt.arg))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// admit reserves a session for who, or refuses with TOOMANYREQUESTS. Before refusing
// it asks the seam about the sessions idle here (sessions.suspects) and stops counting
// those that ended elsewhere (committed through another proxy, expired on the origin).
func (g *Registry) admit(r *http.Request, who string) error {
	err := g.sessions.reserve(who, g.opts.Now())
	if err == nil {
		return nil
	}
	ids := g.sessions.suspects(who, g.opts.Now())
	for _, id := range ids {
		if _, err := g.opts.Uploads.Size(r.Context(), id); errors.Is(err, ErrUploadUnknown) {
			g.sessions.done(id)
		}
	}
	if len(ids) == 0 {
		return err
	}
	return g.sessions.reserve(who, g.opts.Now())
}

// track counts a request on upload session id that ended in err; ends is whether it
// ends the session when it succeeds (commit, cancel). A session the seam does not know,
// or one whose commit failed its digest (the upload is discarded), has ended too.
func (g *Registry) track(id string, err error, ends bool) {
	if (err == nil && ends) || errors.Is(err, ErrUploadUnknown) || errors.Is(err, ErrDigestMismatch) {
		g.sessions.done(id)
		return
	}
	g.sessions.touch(id, g.opts.Now())
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}
