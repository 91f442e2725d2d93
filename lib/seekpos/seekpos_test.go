package seekpos

import (
	"errors"
	"io"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cur, size, offset int64
		whence            int
		want              int64
		err               bool
	}{
		{5, 100, 10, io.SeekStart, 10, false},
		{5, 100, 10, io.SeekCurrent, 15, false},
		{5, 100, -10, io.SeekEnd, 90, false},
		{5, 100, 20, io.SeekEnd, 120, false}, // past the end, as for files
		{5, 100, -6, io.SeekCurrent, 5, true},
		{5, 100, 0, 7, 5, true},
	} {
		got, err := Resolve(tc.cur, tc.size, tc.offset, tc.whence)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("Resolve(%d, %d, %d, %d) = %d, %v; want %d, error %v", tc.cur, tc.size, tc.offset, tc.whence, got, err, tc.want, tc.err)
		}
	}
	if _, err := Resolve(0, 10, -1, io.SeekStart); !errors.Is(err, ErrNegative) {
		t.Errorf("negative: %v, want ErrNegative", err)
	}
}
