package filetransfer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path"
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
	st := &Store{Dir: dir, Flat: true}
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
	hostile := []string{"../../etc/passwd", "/abs/path", "a/../../b", "..", `C:\x`, "CON", "\x00evil",
		"../in/../x", "ünï/../../cödé", "...", "./.", `\\server\share\f`, "a:b", strings.Repeat("../", 100),
		"../x", "/etc/passwd", "a/./b", `..\..\x`, strings.Repeat("d/", 1000) + "deep"}
	for _, flat := range []bool{true, false} {
		t.Run(fmt.Sprintf("flat=%v", flat), func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "in")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			st := &Store{Dir: dir, Flat: flat}
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
				if !insideDir(t, dir, path) || (flat && filepath.Dir(path) != dir) {
					t.Fatalf("%q committed outside the store: %s", name, path)
				}
			}
			// Only the store directory has anything in it.
			if names := dirNames(t, root); len(names) != 1 || names[0] != "in" {
				t.Fatalf("root holds %v", names)
			}
			if files := regularFiles(t, dir); len(files) != len(hostile) {
				t.Fatalf("store holds %v", files)
			}
		})
	}
}

// insideDir reports whether p, with every symbolic link resolved, is inside
// dir.
func insideDir(t *testing.T, dir, p string) bool {
	t.Helper()
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatalf("resolve %s: %v", p, err)
	}
	rdir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(rdir, real)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// regularFiles lists the regular files under dir (relative, with "/").
func regularFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSanitizePath(t *testing.T) {
	deep := strings.Repeat("d/", MaxDepth) + "deep.txt"
	comp := strings.Repeat("c", 200)
	long := strings.Repeat(comp+"/", 10) + "f"
	for in, want := range map[string]string{
		"dir/sub/x.txt":                         "dir/sub/x.txt",
		"x.txt":                                 "x.txt",
		"../x":                                  "x",
		"a/../../x":                             "a/x",
		"/etc/passwd":                           "etc/passwd",
		"a/./b":                                 "a/b",
		`..\..\x`:                               "x",
		`a\b/c`:                                 "a/b/c",
		`C:\win\x.ini`:                          "C_/win/x.ini",
		`\\server\share\f`:                      "server/share/f",
		".git/config":                           "git/config",
		"a/CON/b":                               "a/_CON/b",
		"a//b///c":                              "a/b/c",
		"a/.../ /b":                             "a/b",
		"dir/":                                  "dir",
		"/":                                     "file",
		"..":                                    "file",
		"":                                      "file",
		"a/\x00/b":                              "a/_/b",
		"e\u202Evil/x":                          "e_vil/x",
		"bad\xff/x":                             "bad_/x",
		strings.Repeat("d/", 1000) + "deep.txt": deep,
		long:                                    strings.Repeat(comp+"/", 5) + "f", // 5*201+1 <= MaxPathLen
	} {
		if got := SanitizePath(in); got != want {
			t.Errorf("SanitizePath(%.60q) = %.60q, want %.60q", in, got, want)
		}
	}
}

// FuzzSanitizePath checks the invariants of SanitizePath for any input.
func FuzzSanitizePath(f *testing.F) {
	for _, s := range []string{"a/../../b", `..\..\x`, "/etc/passwd", "a/./b", strings.Repeat("d/", 100) + "x", "", "\x00/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p := SanitizePath(in)
		if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || !utf8.ValidString(p) || len(p) > MaxPathLen+MaxNameLen {
			t.Fatalf("SanitizePath(%q) = %q", in, p)
		}
		comps := strings.Split(p, "/")
		if len(comps) > MaxDepth+1 {
			t.Fatalf("SanitizePath(%q) = %q: %d components", in, p, len(comps))
		}
		for _, c := range comps {
			if c != SanitizeName(c) || c == "." || c == ".." {
				t.Fatalf("SanitizePath(%q) = %q: component %q", in, p, c)
			}
		}
		if path.Clean(p) != p {
			t.Fatalf("SanitizePath(%q) = %q is not clean", in, p)
		}
	})
}

// TestStoreNested: names with directories land in subdirectories of Dir,
// created without following symbolic links out of Dir; a directory name
// taken by a file or a link becomes "name (1)"; nothing is written outside.
func TestStoreNested(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "in")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Planted in the download dir: links out (absolute and relative), a
	// link to a directory inside, and a regular file.
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "inner")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte("original"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := &Store{Dir: dir}
	for _, tc := range []struct{ name, want string }{
		{"dir/sub/x.txt", "dir/sub/x.txt"},
		{"dir/sub/x.txt", "dir/sub/x (1).txt"}, // collision of the file
		{"dir/y.txt", "dir/y.txt"},             // next to an existing subdirectory
		{"../x", "x"},
		{"a/../../x", "a/x"},
		{"/etc/passwd", "etc/passwd"},
		{"a/./b", "a/b"},
		{`..\..\z`, "z"},
		{"evil/pwn.txt", "evil (1)/pwn.txt"},
		{"evil/deeper/pwn.txt", "evil (1)/deeper/pwn.txt"},
		{"rel/pwn.txt", "rel (1)/pwn.txt"},
		{"inner/x.txt", "inner (1)/x.txt"},
		{"file.txt/inner.txt", "file.txt (1)/inner.txt"},
		{strings.Repeat("d/", 1000) + "deep.txt", strings.Repeat("d/", MaxDepth) + "deep.txt"},
	} {
		in, err := st.Create(tc.name, 3)
		if err != nil {
			t.Fatalf("%.40q: %v", tc.name, err)
		}
		if in.Name() != SanitizePath(tc.name) {
			t.Errorf("%.40q: Name %q", tc.name, in.Name())
		}
		if filepath.Dir(in.TempPath()) != dir {
			t.Errorf("%.40q: temporary file %s not in the dir", tc.name, in.TempPath())
		}
		in.Write([]byte("abc"))
		p, err := in.Commit()
		if err != nil {
			t.Fatalf("%.40q: %v", tc.name, err)
		}
		if p != filepath.Join(dir, filepath.FromSlash(tc.want)) {
			t.Errorf("%.40q stored at %s, want %s", tc.name, p, tc.want)
		}
		if !insideDir(t, dir, p) {
			t.Errorf("%.40q escaped to %s", tc.name, p)
		}
		if st.Rel(p) != tc.want {
			t.Errorf("Rel(%s) = %q", p, st.Rel(p))
		}
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", p, fi, err)
		}
	}
	// Nothing outside: the link targets are untouched, the file too.
	if names := dirNames(t, outside); len(names) != 0 {
		t.Errorf("written outside the dir: %v", names)
	}
	if names := dirNames(t, root); len(names) != 2 {
		t.Errorf("root holds %v", names)
	}
	if names := dirNames(t, filepath.Join(dir, "real")); len(names) != 0 {
		t.Errorf("written through the inner link: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "file.txt")); string(b) != "original" {
		t.Errorf("file.txt now holds %q", b)
	}
	for _, l := range []string{"evil", "rel", "inner"} {
		if fi, err := os.Lstat(filepath.Join(dir, l)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("link %s replaced: %v %v", l, fi, err)
		}
	}
	// No temporary files left.
	for _, f := range regularFiles(t, dir) {
		if strings.Contains(f, tempPrefix) {
			t.Errorf("left over: %s", f)
		}
	}

	// KeepPartial keeps a failed nested file next to where it would have
	// gone, still inside.
	st.KeepPartial = true
	in, _ := st.Create("evil/broken.bin", 10)
	in.Write([]byte("abc"))
	kept, err := in.Abort()
	if err != nil || kept != filepath.Join(dir, "evil (1)", "broken.bin.failed") {
		t.Fatalf("kept %q %v", kept, err)
	}

	// Flat ignores the directories.
	fl := &Store{Dir: t.TempDir(), Flat: true}
	in, _ = fl.Create("dir/sub/x.txt", 1)
	in.Write([]byte{'x'})
	if p, err := in.Commit(); err != nil || p != filepath.Join(fl.Dir, "x.txt") {
		t.Fatalf("flat: %s %v", p, err)
	}
}

// TestStoreLinkSwap: a directory of the path replaced by a link to the
// outside between two files of a folder: the second file must not follow
// it.
func TestStoreLinkSwap(t *testing.T) {
	root := t.TempDir()
	dir, outside := filepath.Join(root, "in"), filepath.Join(root, "outside")
	os.Mkdir(dir, 0o700)
	os.Mkdir(outside, 0o700)
	st := &Store{Dir: dir}
	in, _ := st.Create("f/a.txt", 1)
	in.Write([]byte{'a'})
	if _, err := in.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	in, _ = st.Create("f/b.txt", 1)
	in.Write([]byte{'b'})
	p, err := in.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, "f (1)", "b.txt") || !insideDir(t, dir, p) {
		t.Fatalf("stored at %s", p)
	}
	if names := dirNames(t, outside); len(names) != 0 {
		t.Fatalf("written outside: %v", names)
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
