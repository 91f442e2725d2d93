package metainfo

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/anacrolix/torrent/bencode"
	tmeta "github.com/anacrolix/torrent/metainfo"
	"github.com/opencontainers/go-digest"
)

func TestPieceLength(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size int64
		want int64
	}{
		{0, 512 << 10},
		{1, 512 << 10},
		{64 << 20, 512 << 10},
		{1 << 30, 512 << 10},
		{1<<30 + 1, 4 << 20},
		{4 << 30, 4 << 20},
		{4<<30 + 1, 16 << 20},
		{20 << 30, 16 << 20},
	} {
		if got := PieceLength(tc.size); got != tc.want {
			t.Errorf("PieceLength(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		size        int
		pieceLength int64
		pieces      int
	}{
		{"empty", 0, 16, 0},
		{"one byte", 1, 16, 1},
		{"exact pieces", 64, 16, 4},
		{"short last piece", 70, 16, 5},
		{"one piece", 1000, 1 << 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := randomBytes(tc.size, uint64(tc.size))
			res, err := Generate(bytes.NewReader(data), tc.pieceLength)
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != digest.FromBytes(data) || res.Size != int64(tc.size) {
				t.Fatalf("got %s size %d, want %s size %d", res.Digest, res.Size, digest.FromBytes(data), tc.size)
			}
			info, ih, err := Parse(res.InfoBytes)
			if err != nil {
				t.Fatal(err)
			}
			if ih != res.InfoHash || ih != sha1.Sum(res.InfoBytes) {
				t.Fatalf("infohash %x, result %x", ih, res.InfoHash)
			}
			if info.NumPieces() != tc.pieces || info.PieceLength != tc.pieceLength || info.Length != int64(tc.size) {
				t.Fatalf("info: %d pieces of %d, length %d", info.NumPieces(), info.PieceLength, info.Length)
			}
			for i := range tc.pieces {
				p := info.Piece(i)
				want := sha1.Sum(data[p.Offset() : p.Offset()+p.Length()])
				if !bytes.Equal(info.Pieces[i*20:(i+1)*20], want[:]) {
					t.Fatalf("piece %d hash differs", i)
				}
			}
			if d, err := DigestOf(info); err != nil || d != res.Digest {
				t.Fatalf("DigestOf = %s, %v", d, err)
			}
			again, _ := Generate(bytes.NewReader(data), tc.pieceLength)
			if again.InfoHash != res.InfoHash {
				t.Fatal("infohash not deterministic")
			}
		})
	}
}

func TestGenerateRejectsBadPieceLength(t *testing.T) {
	t.Parallel()
	if _, err := Generate(strings.NewReader("x"), 0); err == nil {
		t.Fatal("want error")
	}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := bencode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	good, err := Generate(bytes.NewReader(randomBytes(70, 1)), 16)
	if err != nil {
		t.Fatal(err)
	}
	var base tmeta.Info
	if err := bencode.Unmarshal(good.InfoBytes, &base); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*tmeta.Info)) []byte {
		i := base
		f(&i)
		return encode(t, i)
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"not bencode", []byte("hello")},
		{"trailing bytes", append(append([]byte{}, good.InfoBytes...), 'x')},
		{"deep nesting", []byte(strings.Repeat("l", 100) + strings.Repeat("e", 100))},
		{"huge", make([]byte, maxInfoBytes+1)},
		{"name not hex", with(func(i *tmeta.Info) { i.Name = "layer.tar" })},
		{"name upper hex", with(func(i *tmeta.Info) { i.Name = strings.ToUpper(i.Name) })},
		{"name with prefix", with(func(i *tmeta.Info) { i.Name = "sha256:" + i.Name })},
		{"multi file", with(func(i *tmeta.Info) { i.Length = 0; i.Files = []tmeta.FileInfo{{Length: 70, Path: []string{"a"}}} })},
		{"too few pieces", with(func(i *tmeta.Info) { i.Pieces = i.Pieces[:20] })},
		{"ragged pieces", with(func(i *tmeta.Info) { i.Pieces = i.Pieces[:99] })},
		{"zero piece length", with(func(i *tmeta.Info) { i.PieceLength = 0 })},
		{"v2", with(func(i *tmeta.Info) { i.MetaVersion = 2 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Parse(tc.raw)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestResultOf(t *testing.T) {
	t.Parallel()
	res, err := Generate(bytes.NewReader(randomBytes(100, 2)), 32)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ResultOf(res.InfoBytes)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != res.Digest || got.Size != res.Size || got.InfoHash != res.InfoHash {
		t.Fatalf("ResultOf = %+v, want %+v", got, res)
	}
}

func FuzzParse(f *testing.F) {
	res, _ := Generate(bytes.NewReader(randomBytes(70, 3)), 16)
	f.Add(res.InfoBytes)
	f.Add([]byte("d4:name3:abce"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, _, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := DigestOf(info); err != nil {
			t.Fatalf("Parse accepted an info DigestOf rejects: %v", err)
		}
	})
}
