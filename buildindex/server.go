package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/opencontainers/go-digest"
	"github.com/uber-go/tally/v4"
	"go.uber.org/zap"

	"github.com/shoal-p2p/shoal/lib/backend"
	"github.com/shoal-p2p/shoal/lib/buildindexclient"
	"github.com/shoal-p2p/shoal/lib/httpserver"
	"github.com/shoal-p2p/shoal/lib/oci"
)

// Server is the build-index's HTTP API over its backend (in production wrapped by the
// write-back decorator, so a tag is acknowledged once durable locally).
type Server struct {
	backend backend.Backend
	log     *zap.Logger
	scope   tally.Scope
}

// NewServer wires the build-index API.
func NewServer(be backend.Backend, log *zap.Logger, scope tally.Scope) *Server {
	return &Server{backend: be, log: log, scope: scope}
}

// Handler lists every route of the build-index. Repository names hold slashes, so the
// tag routes share the wildcard /tags/* and parseTagsPath splits it:
//
//	PUT       /tags/{repo}/_tag/{tag}   putTag
//	GET, HEAD /tags/{repo}/_tag/{tag}   getTag
//	GET, HEAD /tags/{repo}/_list        getTag (listTags)
//	GET       /repositories             listRepositories
func (s *Server) Handler(metrics http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Use(httpserver.AccessLog(s.log))
	httpserver.MountOps(r, metrics, nil)
	r.Put("/tags/*", s.handle(s.putTag))
	r.Get("/tags/*", s.handle(s.getTag))
	r.Head("/tags/*", s.handle(s.getTag))
	r.Get("/repositories", s.handle(s.listRepositories))
	return r
}

// Sentinels of the error edge; handlers wrap them with what was wrong.
var (
	errBadRequest       = errors.New("bad request")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
)

// handle is the one error edge: it maps sentinels to statuses and codes.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		status, code := http.StatusInternalServerError, buildindexclient.CodeInternal
		switch {
		case errors.Is(err, errNotFound), errors.Is(err, backend.ErrNotFound):
			status, code = http.StatusNotFound, buildindexclient.CodeNotFound
		case errors.Is(err, errBadRequest):
			status, code = http.StatusBadRequest, buildindexclient.CodeBadRequest
		case errors.Is(err, errMethodNotAllowed):
			status, code = http.StatusMethodNotAllowed, "method_not_allowed"
		}
		if status == http.StatusInternalServerError {
			s.scope.Counter("errors").Inc(1)
			s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
		}
		writeJSON(w, status, buildindexclient.ErrorBody{Error: code, Message: err.Error()})
	}
}

// maxLink bounds a tag's body and stored link: a sha512 digest is 135 bytes.
const maxLink = 1 << 10

// putTag stores the digest in the body as the tag; the 201 follows the backend's
// durable write (local and queued, with the write-back decorator).
func (s *Server) putTag(w http.ResponseWriter, r *http.Request) error {
	repo, tag, list, err := parseTagsPath(chi.URLParam(r, "*"))
	if err != nil {
		return err
	}
	if list {
		return fmt.Errorf("%w: PUT on a tag list (PUT /tags/<repo>/_tag/<tag>)", errMethodNotAllowed)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLink+1))
	if err != nil {
		return fmt.Errorf("put tag %s:%s: read body: %w", repo, tag, err)
	}
	if len(body) > maxLink {
		return fmt.Errorf("%w: body over %d bytes (send the digest alone)", errBadRequest, maxLink)
	}
	d, err := parseDigest(string(bytes.TrimSpace(body)))
	if err != nil {
		return err
	}
	if err := s.backend.Upload(backend.WithNamespace(r.Context(), repo), backend.TagName(repo, tag), strings.NewReader(d.String())); err != nil {
		return fmt.Errorf("put tag %s:%s: %w", repo, tag, err)
	}
	s.scope.Counter("tags_put").Inc(1)
	s.log.Info("tag put", zap.String("repo", repo), zap.String("tag", tag), zap.Stringer("digest", d))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// getTag answers the digest of a tag, or the tag list of a repository.
func (s *Server) getTag(w http.ResponseWriter, r *http.Request) error {
	repo, tag, list, err := parseTagsPath(chi.URLParam(r, "*"))
	if err != nil {
		return err
	}
	if list {
		return s.listTags(w, r, repo)
	}
	var link limitedBuffer
	if err := s.backend.Download(backend.WithNamespace(r.Context(), repo), backend.TagName(repo, tag), &link); err != nil {
		if errors.Is(err, backend.ErrNotFound) {
			s.scope.Counter("tags_not_found").Inc(1)
			return fmt.Errorf("%w: tag %s:%s", errNotFound, repo, tag)
		}
		return fmt.Errorf("get tag %s:%s: %w", repo, tag, err)
	}
	d, err := digest.Parse(strings.TrimSpace(link.String()))
	if err != nil {
		return fmt.Errorf("get tag %s:%s: backend link holds %.80q, not a digest: %w", repo, tag, link.String(), err)
	}
	s.scope.Counter("tags_get").Inc(1)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(d.String())))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, d.String())
	return nil
}

func (s *Server) listTags(w http.ResponseWriter, r *http.Request, repo string) error {
	names, err := s.backend.List(backend.WithNamespace(r.Context(), repo), backend.TagsPrefix(repo))
	if err != nil {
		return fmt.Errorf("list tags of %s: %w", repo, err)
	}
	tags := []string{}
	for _, name := range names {
		if rp, tag, ok := backend.ParseTagName(name); ok && rp == repo && oci.ValidTag(tag) {
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		return fmt.Errorf("%w: repository %s has no tags", errNotFound, repo)
	}
	slices.Sort(tags)
	s.scope.Counter("tags_list").Inc(1)
	writeJSON(w, http.StatusOK, buildindexclient.TagList{Tags: slices.Compact(tags)})
	return nil
}

// listRepositories answers every repository with at least one tag. Other objects a
// registry sharing the backend keeps under the repositories prefix are skipped.
func (s *Server) listRepositories(w http.ResponseWriter, r *http.Request) error {
	names, err := s.backend.List(r.Context(), backend.RepositoriesPrefix)
	if err != nil {
		return fmt.Errorf("list repositories: %w", err)
	}
	repos := []string{}
	for _, name := range names {
		if repo, tag, ok := backend.ParseTagName(name); ok && oci.ValidName(repo) && oci.ValidTag(tag) {
			repos = append(repos, repo)
		}
	}
	slices.Sort(repos)
	s.scope.Counter("repositories_list").Inc(1)
	writeJSON(w, http.StatusOK, buildindexclient.RepositoryList{Repositories: slices.Compact(repos)})
	return nil
}

// parseTagsPath splits what follows /tags/ into a repository and either a tag
// ("<repo>/_tag/<tag>") or the list marker ("<repo>/_list"). "_tag" and "_list" can't be
// components of a valid repository name, so the first "/_tag/" is the separator; it is
// looked for first because "_list" and "_tag" are valid tags.
func parseTagsPath(p string) (repo, tag string, list bool, err error) {
	if r, t, ok := strings.Cut(p, "/_tag/"); ok {
		repo, tag = r, t
	} else if r, ok := strings.CutSuffix(p, "/_list"); ok {
		repo, list = r, true
	} else {
		return "", "", false, fmt.Errorf("%w: /tags/%s (use /tags/<repo>/_tag/<tag> or /tags/<repo>/_list)", errNotFound, p)
	}
	if !oci.ValidName(repo) {
		return "", "", false, fmt.Errorf("%w: repository name %.300q is invalid (lowercase components of [a-z0-9] joined by . _ __ or -, separated by /; at most %d bytes)", errBadRequest, repo, oci.MaxNameLength)
	}
	if !list && !oci.ValidTag(tag) {
		return "", "", false, fmt.Errorf("%w: tag %.200q is invalid (1-128 of [a-zA-Z0-9._-], not starting with . or -)", errBadRequest, tag)
	}
	return repo, tag, list, nil
}

// parseDigest accepts sha256 digests only: origins store nothing else, so a tag
// pointing at another algorithm could never be pulled.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("%w: body %.100q is not a sha256 digest (send sha256: and 64 lowercase hex digits)", errBadRequest, s)
	}
	return d, nil
}

// limitedBuffer collects a tag link, failing rather than growing past maxLink.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxLink {
		return 0, fmt.Errorf("tag link longer than %d bytes", maxLink)
	}
	return b.Buffer.Write(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
