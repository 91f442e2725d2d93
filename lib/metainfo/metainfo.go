// Package metainfo builds and checks the BitTorrent v1 info dictionary of a blob.
//
// A blob's torrent is single-file, named by the blob's sha256 hex, and split into SHA-1
// pieces whose length depends only on the blob's size (PieceLength). The info dictionary,
// and so the infohash, is therefore a pure function of the blob: every origin computes
// the same one, and an agent can check that an info names the digest it asked for
// (DigestOf) before trusting its pieces. The SHA-1 pieces guard each piece on the wire;
// the sha256 in the name is checked again over the whole blob when it is committed.
//
// The package does no I/O of its own: Generate reads whatever io.Reader it is given.
package metainfo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/anacrolix/torrent/bencode"
	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

// Piece lengths, by blob size.
const (
	smallPiece  = 512 << 10
	mediumPiece = 4 << 20
	largePiece  = 16 << 20

	smallBlob  = 1 << 30
	mediumBlob = 4 << 30
)

// maxInfoBytes bounds an info dictionary accepted by Parse: 1 TiB at 16 MiB pieces
// needs 1.25 MiB of piece hashes.
const maxInfoBytes = 4 << 20

// maxNesting bounds bencode nesting in Parse. A blob's info is a flat dictionary;
// the limit keeps a hostile info from exhausting the stack of the decoder
// (GHSA-2wrx-84qj-4pcg, fixed upstream only after the version we pin).
const maxNesting = 4

// ErrInvalid is wrapped by every error Parse and DigestOf return for an info dictionary
// that is not a blob's.
var ErrInvalid = errors.New("invalid blob metainfo")

// Result describes a blob and its torrent.
type Result struct {
	// Digest is the blob's sha256 digest.
	Digest digest.Digest
	// Size is the blob's length in bytes.
	Size int64
	// InfoBytes is the bencoded info dictionary.
	InfoBytes []byte
	// InfoHash is the SHA-1 of InfoBytes.
	InfoHash [20]byte
}

// PieceLength returns the torrent piece length for a blob of size bytes.
//
// Small pieces let peers trade sooner (with 16 MiB pieces a seeder sent 3.7 of 4 GiB to
// 8 leechers, with 1 MiB pieces 1.8-2.3 GiB) and make the first verified bytes of a
// stream arrive sooner (a piece is the unit of verification). In the benchmark's flash
// crowd (10 agents, 256 MiB, 100 Mbit/s) 1 MiB pieces instead of 4 MiB halved the time
// and the origin's bytes, and 512 KiB instead of 1 MiB took another 0.1x of the floor
// off (1.25-1.29x instead of 1.35-1.42x), for ~20% more CPU; 256 KiB was no faster
// again and cost 60% more CPU (docs/BENCHMARKS.md). Each piece costs ~400 B of heap per
// torrent in the client and 20 B of metainfo. So: up to 1 GiB, 512 KiB pieces (at most
// 2048 pieces, ~800 KiB of heap, 40 KiB of info); up to 4 GiB, 4 MiB (at most 1024);
// above, 16 MiB (a 20 GiB blob has 1280 pieces).
func PieceLength(size int64) int64 {
	switch {
	case size <= smallBlob:
		return smallPiece
	case size <= mediumBlob:
		return mediumPiece
	default:
		return largePiece
	}
}

// Generate reads a blob to its end once, computing its sha256 digest and the SHA-1
// piece hashes of its torrent with the given piece length.
func Generate(r io.Reader, pieceLength int64) (Result, error) {
	if pieceLength <= 0 {
		return Result{}, fmt.Errorf("metainfo generate: piece length %d is not positive", pieceLength)
	}
	sum := sha256.New()
	n := &counter{w: sum}
	pieces, err := tmeta.GeneratePieces(io.TeeReader(r, n), pieceLength, nil)
	if err != nil {
		return Result{}, fmt.Errorf("metainfo generate: %w", err)
	}
	return build(digestOf(sum), n.n, pieceLength, pieces)
}

func digestOf(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

func build(d digest.Digest, size, pieceLength int64, pieces []byte) (Result, error) {
	info := tmeta.Info{
		Name:        d.Encoded(),
		Length:      size,
		PieceLength: pieceLength,
		Pieces:      pieces,
	}
	b, err := bencode.Marshal(info)
	if err != nil {
		return Result{}, fmt.Errorf("metainfo encode %s: %w", d, err)
	}
	return Result{Digest: d, Size: size, InfoBytes: b, InfoHash: tmeta.HashBytes(b)}, nil
}

// Parse decodes and checks a blob's info dictionary: single file, v1 pieces consistent
// with the length, and a name that is a sha256 hex. It returns the info and its infohash.
func Parse(infoBytes []byte) (tmeta.Info, [20]byte, error) {
	var info tmeta.Info
	if len(infoBytes) > maxInfoBytes {
		return info, [20]byte{}, fmt.Errorf("metainfo parse: %d bytes, more than %d: %w", len(infoBytes), maxInfoBytes, ErrInvalid)
	}
	if err := checkNesting(infoBytes, maxNesting); err != nil {
		return info, [20]byte{}, fmt.Errorf("metainfo parse: %w: %w", ErrInvalid, err)
	}
	if err := bencode.Unmarshal(infoBytes, &info); err != nil {
		return info, [20]byte{}, fmt.Errorf("metainfo parse: %w: %w", ErrInvalid, err)
	}
	if err := check(&info); err != nil {
		return info, [20]byte{}, fmt.Errorf("metainfo parse %q: %w", info.Name, err)
	}
	return info, tmeta.HashBytes(infoBytes), nil
}

// ResultOf is Parse returning a Result.
func ResultOf(infoBytes []byte) (Result, error) {
	info, ih, err := Parse(infoBytes)
	if err != nil {
		return Result{}, err
	}
	d, _ := DigestOf(info) // checked by Parse
	return Result{Digest: d, Size: info.Length, InfoBytes: infoBytes, InfoHash: ih}, nil
}

func check(info *tmeta.Info) error {
	if _, err := DigestOf(*info); err != nil {
		return err
	}
	switch {
	case info.HasV2() || len(info.Files) != 0:
		return fmt.Errorf("%w: not a single-file v1 torrent", ErrInvalid)
	case info.Length < 0:
		return fmt.Errorf("%w: negative length %d", ErrInvalid, info.Length)
	case info.PieceLength <= 0:
		return fmt.Errorf("%w: piece length %d is not positive", ErrInvalid, info.PieceLength)
	case len(info.Pieces)%20 != 0:
		return fmt.Errorf("%w: pieces field of %d bytes is not a list of SHA-1 hashes", ErrInvalid, len(info.Pieces))
	}
	want := (info.Length + info.PieceLength - 1) / info.PieceLength
	if got := int64(len(info.Pieces) / 20); got != want {
		return fmt.Errorf("%w: %d piece hashes for %d bytes in pieces of %d", ErrInvalid, got, info.Length, info.PieceLength)
	}
	return nil
}

// DigestOf returns the digest an info dictionary names.
func DigestOf(info tmeta.Info) (digest.Digest, error) {
	d := digest.NewDigestFromEncoded(digest.SHA256, info.Name)
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: name %q is not a sha256 hex", ErrInvalid, info.Name)
	}
	return d, nil
}

// checkNesting walks bencoded data without decoding it and fails if lists and
// dictionaries nest deeper than max.
func checkNesting(b []byte, max int) error {
	depth := 0
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == 'd' || c == 'l':
			if depth++; depth > max {
				return fmt.Errorf("bencode nested deeper than %d", max)
			}
			i++
		case c == 'e':
			depth--
			i++
		case c == 'i':
			end := bytes.IndexByte(b[i:], 'e')
			if end < 0 {
				return errors.New("bencode integer not terminated")
			}
			i += end + 1
		case c >= '0' && c <= '9':
			next, err := skipString(b, i)
			if err != nil {
				return err
			}
			i = next
		default:
			return fmt.Errorf("bencode: unexpected byte %q at %d", c, i)
		}
	}
	return nil
}

// skipString returns the index after the bencoded string starting at i.
func skipString(b []byte, i int) (int, error) {
	colon := bytes.IndexByte(b[i:], ':')
	if colon < 0 {
		return 0, errors.New("bencode string length not terminated")
	}
	n, err := strconv.Atoi(string(b[i : i+colon]))
	if err != nil || n < 0 || n > len(b)-(i+colon+1) {
		return 0, fmt.Errorf("bencode string at %d overruns the data", i)
	}
	return i + colon + 1 + n, nil
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
