package preheat

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// Summary is a job without its per-blob and per-host detail: an entry of
// GET /preheat/jobs. JSON (snake_case, times RFC 3339 in the caller's zone):
//
//	{"id":7,"source":"dragonfly","scope":"all_peers","state":"RUNNING",
//	 "target":{"registry":"harbor.example.com","repository":"library/busybox","reference":"latest"},
//	 "digest":"sha256:…","media_type":"application/vnd.oci.image.index.v1+json",
//	 "created_at":"…","started_at":"…","finished_at":"…",
//	 "bytes_done":1024,"bytes_total":4096,"error":"…","missing":["sha256:…"]}
//
// digest and media_type appear once the root is expanded; started_at, finished_at,
// error and missing only when they are set. bytes_* add up every blob on every host.
type Summary struct {
	ID         int64           `json:"id"`
	Source     Source          `json:"source"`
	Scope      Scope           `json:"scope"`
	State      State           `json:"state"`
	Target     Target          `json:"target"`
	Digest     digest.Digest   `json:"digest,omitempty"`
	MediaType  string          `json:"media_type,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	BytesDone  int64           `json:"bytes_done"`
	BytesTotal int64           `json:"bytes_total"`
	Error      string          `json:"error,omitempty"`
	Missing    []digest.Digest `json:"missing,omitempty"`
}

// Snapshot is a job in full: GET /preheat/jobs/{id}. Its JSON is Summary's fields plus
//
//	"platforms":["linux/amd64",…],
//	"blobs":[{"digest","kind","media_type","size","bytes_done","bytes_total",
//	          "hosts_done","hosts_total","error"}…],   (plan order)
//	"hosts":[{"kind":"origin"|"agent","address","bytes_done","bytes_total",
//	          "blobs_done","blobs_total","ok","error"}…] (origins first, in assignment order)
//
// A blob's bytes_total is its size times its hosts; hosts_done counts the hosts that
// hold it. A host is ok once it holds every blob assigned to it; error is its first
// failure, "<digest>: <cause>".
type Snapshot struct {
	Summary
	Platforms []string       `json:"platforms,omitempty"`
	Blobs     []BlobProgress `json:"blobs"`
	Hosts     []HostProgress `json:"hosts"`
}

// BlobProgress is one plan entry across its hosts.
type BlobProgress struct {
	Digest     digest.Digest `json:"digest"`
	Kind       Kind          `json:"kind"`
	MediaType  string        `json:"media_type"`
	Size       int64         `json:"size"`
	BytesDone  int64         `json:"bytes_done"`
	BytesTotal int64         `json:"bytes_total"`
	HostsDone  int           `json:"hosts_done"`
	HostsTotal int           `json:"hosts_total"`
	Error      string        `json:"error,omitempty"`
}

// HostProgress is one host across the blobs assigned to it.
type HostProgress struct {
	Host
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	BlobsDone  int    `json:"blobs_done"`
	BlobsTotal int    `json:"blobs_total"`
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
}

// Summary returns the job's summary, sharing nothing with the job.
func (j *Job) Summary() Summary {
	s := Summary{ID: j.id, Source: j.source, Scope: j.scope, State: j.state, Target: j.target,
		Digest: j.plan.Root, MediaType: j.plan.MediaType, CreatedAt: j.created, Error: j.err}
	if !j.started.IsZero() {
		t := j.started
		s.StartedAt = &t
	}
	if !j.finished.IsZero() {
		t := j.finished
		s.FinishedAt = &t
	}
	if len(j.missing) > 0 {
		s.Missing = append([]digest.Digest(nil), j.missing...)
	}
	for _, w := range j.work {
		s.BytesDone += w.done
		s.BytesTotal += w.size
	}
	return s
}

// Snapshot returns the job in full, sharing nothing with the job, so it may be encoded
// after the owner has moved on.
func (j *Job) Snapshot() Snapshot {
	s := Snapshot{Summary: j.Summary(), Blobs: []BlobProgress{}, Hosts: []HostProgress{},
		Platforms: append([]string(nil), j.plan.Platforms...)}
	blobAt := map[digest.Digest]int{}
	for _, e := range j.plan.Entries {
		blobAt[e.Digest] = len(s.Blobs)
		s.Blobs = append(s.Blobs, BlobProgress{Digest: e.Digest, Kind: e.Kind, MediaType: e.MediaType, Size: e.Size})
	}
	hostAt := map[Host]int{}
	for _, h := range j.hosts {
		hostAt[h] = len(s.Hosts)
		s.Hosts = append(s.Hosts, HostProgress{Host: h})
	}
	for _, pr := range j.order {
		w := j.work[pr]
		b, h := &s.Blobs[blobAt[pr.Digest]], &s.Hosts[hostAt[pr.Host]]
		b.BytesDone += w.done
		b.BytesTotal += w.size
		b.HostsTotal++
		h.BytesDone += w.done
		h.BytesTotal += w.size
		h.BlobsTotal++
		switch {
		case w.settled && w.err == "":
			b.HostsDone++
			h.BlobsDone++
		case w.err != "":
			if b.Error == "" {
				b.Error = pr.Host.String() + ": " + w.err
			}
			if h.Error == "" {
				h.Error = pr.Digest.String() + ": " + w.err
			}
		}
	}
	for i := range s.Hosts {
		s.Hosts[i].OK = s.Hosts[i].BlobsDone == s.Hosts[i].BlobsTotal
	}
	return s
}
