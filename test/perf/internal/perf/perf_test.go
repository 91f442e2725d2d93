package perf

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteSectionReplacesOnlyItsOwn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	start := "# Shoal benchmarks\n\n<!-- bench:begin x -->\nswarm\n<!-- bench:end x -->\n"
	if err := os.WriteFile(path, []byte(start), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, md := range []string{"one\n", "two"} {
		if err := WriteSection(path, "tracker", md); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteSection(path, "loopback size=1", "three\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := start + "\n<!-- perf:begin tracker -->\ntwo\n<!-- perf:end tracker -->\n" +
		"\n<!-- perf:begin loopback size=1 -->\nthree\n<!-- perf:end loopback size=1 -->\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}
