package registry

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strconv"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Memory is an in-memory Blobs, Tags and Uploads: the fake for tests of anything
// built on the registry.
type Memory struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	tags    map[string]map[string]digest.Digest
	uploads map[string]*bytes.Buffer
	nextID  int
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{
		blobs:   map[digest.Digest][]byte{},
		tags:    map[string]map[string]digest.Digest{},
		uploads: map[string]*bytes.Buffer{},
	}
}

var (
	_ Blobs   = (*Memory)(nil)
	_ Tags    = (*Memory)(nil)
	_ Uploads = (*Memory)(nil)
)

// BlobCount is the number of stored blobs (manifests included).
func (m *Memory) BlobCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.blobs)
}

func (m *Memory) Stat(_ context.Context, d digest.Digest) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return 0, ErrNotFound
	}
	return int64(len(b)), nil
}

func (m *Memory) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, 0, ErrNotFound
	}
	return nopCloser{bytes.NewReader(b)}, int64(len(b)), nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (m *Memory) Get(_ context.Context, repo, tag string) (digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.tags[repo][tag]
	if !ok {
		return "", ErrNotFound
	}
	return d, nil
}

func (m *Memory) Put(_ context.Context, repo, tag string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tags[repo] == nil {
		m.tags[repo] = map[string]digest.Digest{}
	}
	m.tags[repo][tag] = d
	return nil
}

func (m *Memory) List(_ context.Context, repo string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tags[repo]) == 0 {
		return nil, ErrNotFound
	}
	var out []string
	for t := range m.tags[repo] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

func (m *Memory) Repositories(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []string{}
	for r := range m.tags {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}

func (m *Memory) Start(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	id := "u" + strconv.Itoa(m.nextID)
	m.uploads[id] = &bytes.Buffer{}
	return id, nil
}

func (m *Memory) Append(_ context.Context, id string, offset int64, r io.Reader) (int64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	buf, ok := m.uploads[id]
	if !ok {
		return 0, ErrUploadUnknown
	}
	if offset != int64(buf.Len()) {
		return 0, ErrOffsetMismatch
	}
	buf.Write(data)
	return int64(buf.Len()), nil
}

func (m *Memory) Size(_ context.Context, id string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	buf, ok := m.uploads[id]
	if !ok {
		return 0, ErrUploadUnknown
	}
	return int64(buf.Len()), nil
}

// Commit stores the upload under d if it matches; either way the session ends.
func (m *Memory) Commit(_ context.Context, id string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	buf, ok := m.uploads[id]
	if !ok {
		return ErrUploadUnknown
	}
	delete(m.uploads, id)
	if digest.FromBytes(buf.Bytes()) != d {
		return ErrDigestMismatch
	}
	m.blobs[d] = buf.Bytes()
	return nil
}

func (m *Memory) Cancel(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.uploads[id]; !ok {
		return ErrUploadUnknown
	}
	delete(m.uploads, id)
	return nil
}
