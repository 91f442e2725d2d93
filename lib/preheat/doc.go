// Package preheat is the pure core of warming an image before nodes pull it (Harbor's
// P2P preheat through either its "kraken" or "dragonfly" provider, or a registry
// notification). It decides and records; it moves no bytes:
//
//   - Expand turns a root manifest into a Plan: every manifest under it, every config
//     and every layer, each once, in a fixed order.
//   - Targets decides which hosts (owner origins, and for all_peers every live agent)
//     must hold each blob; Pending says which of those pairs are not warm yet.
//   - Job records one preheat's state, per-blob and per-host progress and its errors;
//     Registry keeps jobs by integer id for the job API.
//
// Those pure parts do no I/O and read no clock: manifests come through a Fetcher, time
// comes in as now, and Registry serialises each job's owner with readers.
//
// Runner is the thin shell over them that moves the bytes, through three seams the
// wiring implements: Content (the registry the job names, with its credentials), Sink
// (the origin cluster: one Put stores a blob on all its owner origins and the backend)
// and AgentWarmer (scope all_peers). Every blob is verified against its digest while it
// streams into the Sink, so a corrupt or cut copy is never stored. Jobs and copies are
// bounded by RunnerConfig, and Close waits for every goroutine.
package preheat
