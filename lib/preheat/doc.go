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
// Nothing here does I/O or reads a clock: manifests come through a Fetcher, time comes
// in as now, and one goroutine owns each job's progress while Registry serialises it
// with readers.
package preheat
