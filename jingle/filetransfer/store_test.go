package filetransfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("é", 200) + ".tar.gz" // 400 bytes of stem
	for in, want := range map[string]string{
		"report.pdf":            "report.pdf",
		"../../etc/passwd":      "passwd",
		"/abs/path":             "path",
		"a/../../b":             "b",
		"..":                    "file",
		".":                     "file",
		"":                      "file",
		"/":                     "file",
		`C:\x`:                  "x",
		`C:x`:                   "C_x",
		`..\..\windows\win.ini`: "win.ini",
		"CON":                   "_CON",
		"con.txt":               "_con.txt",
		"COM1":                  "_COM1",
		"lpt9.log":              "_lpt9.log",
		"CONSOLE":               "CONSOLE",
		"\x00evil":              "_evil",
		"a\nb\tc":               "a_b_c",
		".bashrc":               "bashrc",
		"...hidden":             "hidden",
		"trailing. . ":          "trailing",
		"  spaced  ":            "spaced",
		"what?.txt":             "what_.txt",
		"résumé ünïcode.txt":    "résumé ünïcode.txt",
		"日本語.txt":               "日本語.txt",
		"evil\u202Etxt.exe":     "evil_txt.exe",
		"bad\xffutf8":           "bad_utf8",
	} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	got := SanitizeName(long)
	if len(got) > MaxNameLen || !strings.HasSuffix(got, ".gz") || !utf8.ValidString(got) {
		t.Errorf("long name: %d bytes %q", len(got), got)
	}
}

// FuzzSanitizeName checks the invariants of SanitizeName for any input.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"../../etc/passwd", `C:\x`, "CON", "\x00", "..", strings.Repeat("a", 300) + ".txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := SanitizeName(in)
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00") || len(s) > MaxNameLen ||
			!utf8.ValidString(s) || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, " ") {
			t.Fatalf("SanitizeName(%q) = %q", in, s)
		}
		if filepath.Base(s) != s {
			t.Fatalf("SanitizeName(%q) = %q is a path", in, s)
		}
	})
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestStoreCommit(t *testing.T) {
	dir := t.TempDir()
	st := &Store{Dir: dir}
	data := []byte("hello, world")
	in, err := st.Create("../../etc/hello.txt", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(in.TempPath()) != dir || !strings.HasPrefix(filepath.Base(in.TempPath()), tempPrefix) {
		t.Fatalf("temp file %s", in.TempPath())
	}
	if fi, err := os.Stat(in.TempPath()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("temp file mode: %v %v", fi, err)
	}
	if _, err := in.Write(data); err != nil {
		t.Fatal(err)
	}
	// Nothing under the final name before Commit.
	if _, err := os.Stat(filepath.Join(dir, "hello.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("final name exists before commit: %v", err)
	}
	sum := sha256.Sum256(data)
	v, err := in.Verify([]Hash{{Algo: AlgoSHA256, Value: sum[:]}})
	if err != nil || !v.Verified {
		t.Fatalf("verify: %+v %v", v, err)
	}
	path, err := in.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "hello.txt") {
		t.Fatalf("path %s", path)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatalf("content %q", got)
	}
	if names := dirNames(t, dir); len(names) != 1 {
		t.Fatalf("dir holds %v", names)
	}
	if kept, err := in.Abort(); err != nil || kept != "" {
		t.Fatalf("abort after commit: %q %v", kept, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("abort after commit removed the file: %v", err)
	}
}

func TestStoreCollisions(t *testing.T) {
	dir := t.TempDir()
	st := &Store{Dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("original"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Concurrent commits of the same name: each gets its own name, the
	// existing file is untouched.
	const n = 8
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := st.Create("a.txt", 1)
			if err != nil {
				errs[i] = err
				return
			}
			in.Write([]byte{byte('0' + i)})
			paths[i], errs[i] = in.Commit()
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if seen[paths[i]] {
			t.Fatalf("two commits to %s", paths[i])
		}
		seen[paths[i]] = true
		b, _ := os.ReadFile(paths[i])
		if string(b) != string(rune('0'+i)) {
			t.Fatalf("%s holds %q", paths[i], b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(b) != "original" {
		t.Fatalf("original overwritten: %q", b)
	}
	if !seen[filepath.Join(dir, "a (1).txt")] || !seen[filepath.Join(dir, "a (8).txt")] {
		t.Fatalf("names %v", paths)
	}
	if names := dirNames(t, dir); len(names) != n+1 {
		t.Fatalf("dir holds %v", names)
	}
}

func TestCandidateNameLength(t *testing.T) {
	stem := strings.Repeat("x", 300)
	for _, i := range []int{0, 1, 9999} {
		c := candidateName(stem, ".txt", ".failed", i)
		if len(c) > MaxNameLen || !strings.HasSuffix(c, ".txt.failed") {
			t.Fatalf("candidate %d: %d bytes %q", i, len(c), c)
		}
	}
}

func TestStoreSizeAndHashFailures(t *testing.T) {
	for _, keep := range []bool{false, true} {
		dir := t.TempDir()
		st := &Store{Dir: dir, KeepPartial: keep}

		// Too much data.
		in, _ := st.Create("big.bin", 4)
		n, err := in.Write([]byte("12345"))
		if !errors.Is(err, ErrSizeMismatch) || n != 4 {
			t.Fatalf("overlong write: %d %v", n, err)
		}
		// Too little data.
		in2, _ := st.Create("short.bin", 10)
		in2.Write([]byte("123"))
		if _, err := in2.Commit(); !errors.Is(err, ErrSizeMismatch) {
			t.Fatalf("short commit: %v", err)
		}
		kept2, err := in2.Abort()
		if err != nil {
			t.Fatal(err)
		}
		// Wrong hash.
		in3, _ := st.Create("bad.bin", 3)
		in3.Write([]byte("abc"))
		if _, err := in3.Verify([]Hash{{Algo: AlgoSHA256, Value: make([]byte, 32)}}); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("verify: %v", err)
		}
		kept3, _ := in3.Abort()
		in.Abort()

		for _, name := range []string{"big.bin", "short.bin", "bad.bin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("keep=%v: %s exists under its final name", keep, name)
			}
		}
		names := dirNames(t, dir)
		if !keep {
			if len(names) != 0 || kept2 != "" || kept3 != "" {
				t.Fatalf("keep=false: dir holds %v", names)
			}
			continue
		}
		if len(names) != 3 || kept3 != filepath.Join(dir, "bad.bin.failed") || filepath.Base(kept2) != "short.bin.failed" {
			t.Fatalf("keep=true: dir holds %v (kept %q %q)", names, kept2, kept3)
		}
	}
}

func TestStoreMaxSize(t *testing.T) {
	st := &Store{Dir: t.TempDir(), MaxSize: 10}
	if _, err := st.Create("x", 11); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("create: %v", err)
	}
	in, err := st.Create("x", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Abort()
	if _, err := in.Write(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("write past MaxSize: %v", err)
	}
}

func TestStoreHostileNames(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "in")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st := &Store{Dir: dir}
	hostile := []string{"../../etc/passwd", "/abs/path", "a/../../b", "..", `C:\x`, "CON", "\x00evil",
		"../in/../x", "ünï/../../cödé", "...", "./.", `\\server\share\f`, "a:b", strings.Repeat("../", 100)}
	for _, name := range hostile {
		in, err := st.Create(name, 1)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		in.Write([]byte{'x'})
		path, err := in.Commit()
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if filepath.Dir(path) != dir {
			t.Fatalf("%q committed outside the store: %s", name, path)
		}
	}
	// Only the store directory has anything in it.
	if names := dirNames(t, root); len(names) != 1 || names[0] != "in" {
		t.Fatalf("root holds %v", names)
	}
	if names := dirNames(t, dir); len(names) != len(hostile) {
		t.Fatalf("store holds %v", names)
	}
}

func TestVerify(t *testing.T) {
	h := NewHasher(AlgoSHA256, AlgoSHA1, AlgoSHA512, AlgoBLAKE2b256, "md5", AlgoSHA256)
	if got := h.Algos(); len(got) != 4 {
		t.Fatalf("algos %v", got)
	}
	h.Write([]byte("abc"))
	got := h.Sums()
	s256, _ := h.Sum(AlgoSHA256)
	s1, _ := h.Sum(AlgoSHA1)
	bad := Hash{Algo: AlgoSHA256, Value: make([]byte, 32)}
	for _, tc := range []struct {
		name     string
		want     []Hash
		verified bool
		err      error
		note     string
	}{
		{"none", nil, false, nil, "peer sent no hash"},
		{"announced only", []Hash{{Algo: AlgoSHA256}}, false, nil, "peer sent no hash"},
		{"sha-256", []Hash{s256}, true, nil, ""},
		{"sha-1 alone", []Hash{s1}, false, nil, "only sha-1 offered (too weak to verify)"},
		{"sha-1 + sha-256", []Hash{s1, s256}, true, nil, ""},
		{"mismatch", []Hash{bad}, false, ErrHashMismatch, ""},
		{"sha-1 mismatch beside good sha-256", []Hash{{Algo: AlgoSHA1, Value: make([]byte, 20)}, s256}, false, ErrHashMismatch, ""},
		{"unsupported", []Hash{{Algo: "md5", Value: []byte{1}}}, false, nil, "peer sent only unsupported hash algorithms: md5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(got, tc.want)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && (v.Verified != tc.verified || v.Note != tc.note) {
				t.Fatalf("%+v", v)
			}
		})
	}
	// Known vector: sha-256("abc").
	if s256.Base64() != "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=" {
		t.Fatalf("sha-256(abc) = %s", s256.Base64())
	}
}

func TestVerifyRehash(t *testing.T) {
	// A checksum with an algorithm not computed while streaming is
	// checked by re-reading the temporary file.
	st := &Store{Dir: t.TempDir()}
	in, _ := st.Create("f", 3)
	defer in.Abort()
	in.Write([]byte("abc"))
	h := NewHasher(AlgoSHA512)
	h.Write([]byte("abc"))
	s512, _ := h.Sum(AlgoSHA512)
	v, err := in.Verify([]Hash{s512})
	if err != nil || !v.Verified {
		t.Fatalf("%+v %v", v, err)
	}
}
