package filetransfer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest file name the Store writes, in bytes (the limit
// of common file systems).
const MaxNameLen = 255

// MaxDepth is the deepest directory nesting the Store creates for a name
// with "/" separators (see SanitizePath): deeper directories are dropped.
const MaxDepth = 32

// MaxPathLen bounds the length in bytes of a relative path the Store
// writes under its Dir (see SanitizePath).
const MaxPathLen = 1024

// maxCollisions bounds the "name (n).ext" search.
const maxCollisions = 10000

// tempPrefix and tempSuffix frame the name of a file being received.
const (
	tempPrefix = ".xjingle-"
	tempSuffix = ".part"
)

// writebackEvery is how many bytes an IncomingFile writes between two
// requests to the kernel to start writing them to disk (startWriteback).
// Without them the dirty pages of a large file wait for the fsync of
// Commit, which then writes the whole file while the transfer waits.
const writebackEvery = 8 << 20

// Store receives files into one directory, safely:
//
//   - Names a peer sends are sanitised: nothing is ever written outside
//     Dir. A name with "/" (or "\") separators, as a folder transfer sends
//     ("photos/2024/a.jpg"), keeps its relative path: each component is
//     sanitised (SanitizePath), and the subdirectories are created with
//     an os.Root on Dir, so that no symbolic link (planted in Dir by anyone)
//     leads a write out of Dir; a directory component that exists as
//     something other than a real directory (a file, a symlink) becomes
//     "name (1)", .... With Flat, only the last element is kept
//     (SanitizeName) and every file lands directly in Dir.
//   - Data goes to a temporary file ".xjingle-<random>.part" in Dir,
//     created exclusively with mode 0600.
//   - The file appears under its final name only in Commit, after the
//     caller checked the hash and Commit checked the size, and after an
//     fsync; it never replaces an existing file: on a collision it becomes
//     "name (1).ext", "name (2).ext", ... (chosen race-free with a hard
//     link, or an exclusive placeholder where links are not supported).
//   - A failed transfer (Abort) is removed, or, with KeepPartial, kept as
//     "name.failed" (never under the final name).
//
// A Store may be used by several transfers at once.
type Store struct {
	// Dir is the directory files are received into; it must exist.
	Dir string
	// Flat stores every file directly in Dir under the last element of its
	// name, ignoring the directories a peer names (see SanitizeName).
	// Without it a relative path is kept (see SanitizePath).
	Flat bool
	// KeepPartial keeps failed transfers as "<name>.failed" instead of
	// removing them.
	KeepPartial bool
	// MaxSize, if positive, is the largest file Create accepts
	// (ErrTooLarge).
	MaxSize int64
	// Resume keeps the data of a failed transfer whose sender supports
	// ranged transfers as ".xjingle-resume-<key>.part" (plus a ".json"
	// sidecar) so that a later offer of the same file resumes it (see
	// CreateResumable and XEP-0234 §6.4). It wins over KeepPartial for such
	// transfers.
	Resume bool
}

// IncomingFile is one file being received into a Store. It is an io.Writer that
// hashes what it writes and refuses to write past the announced size. It is
// not safe for concurrent writes.
type IncomingFile struct {
	store *Store
	name  string // sanitised final name: a relative, slash-separated path
	size  int64  // announced size, -1 if unknown
	tmp   string // path of the temporary file
	f     *os.File
	h     *Hasher
	n     int64
	// offset is the data already on disk when a resumed file was created;
	// res is nil for a file that is not resumable.
	offset int64
	res    *resumable
	// flushed is in.n when writeback was last started (startWriteback).
	flushed int64

	mu   sync.Mutex
	done bool
}

// Create starts receiving a file the peer calls name, of size bytes (-1 if
// unknown), hashing it with algos while it is written (unsupported algos are
// ignored; sha-256 is always computed).
func (s *Store) Create(name string, size int64, algos ...string) (*IncomingFile, error) {
	if s.MaxSize > 0 && size > s.MaxSize {
		return nil, fmt.Errorf("filetransfer: store %s: %d bytes (limit %d): %w", name, size, s.MaxSize, ErrTooLarge)
	}
	if fi, err := os.Stat(s.Dir); err != nil {
		return nil, fmt.Errorf("filetransfer: store: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("filetransfer: store: %s is not a directory", s.Dir)
	}
	var f *os.File
	var tmp string
	for i := 0; ; i++ {
		var rnd [12]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("filetransfer: store: %w", err)
		}
		tmp = filepath.Join(s.Dir, tempPrefix+hex.EncodeToString(rnd[:])+tempSuffix)
		var err error
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i >= 10 {
			return nil, fmt.Errorf("filetransfer: store: create temporary file: %w", err)
		}
	}
	if err := reserve(f, 0, size); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("filetransfer: store %s in %s: %w", name, s.Dir, err)
	}
	return &IncomingFile{
		store: s, name: s.StoredName(name), size: size, tmp: tmp, f: f,
		h: NewHasher(append([]string{AlgoSHA256}, algos...)...),
	}, nil
}

// reserve preallocates the n bytes at off of f (see preallocate) and maps
// a failure to ErrNoSpace, or ErrTooLarge for a file bigger than the file
// system allows.
func reserve(f *os.File, off, n int64) error {
	err := preallocate(f, off, n)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EFBIG):
		return fmt.Errorf("%d bytes: %w: %w", n, err, ErrTooLarge)
	}
	return fmt.Errorf("%d bytes: %w: %w", n, err, ErrNoSpace)
}

// Name is the sanitised name the file will be committed under (before any
// collision suffix), relative to the Store's Dir with "/" separators.
func (in *IncomingFile) Name() string { return in.name }

// StoredName is the sanitised relative path (with "/" separators) a file
// the peer calls name is stored under, before any collision suffix:
// SanitizeName(name) with Flat, else SanitizePath(name).
func (s *Store) StoredName(name string) string {
	if s.Flat {
		return SanitizeName(name)
	}
	return SanitizePath(name)
}

// Rel returns the path of a file of the Store (as Commit returns it)
// relative to Dir, with "/" separators.
func (s *Store) Rel(p string) string {
	if r, err := filepath.Rel(s.Dir, p); err == nil {
		return filepath.ToSlash(r)
	}
	return filepath.Base(p)
}

// TempPath is the path of the temporary file.
func (in *IncomingFile) TempPath() string { return in.tmp }

// Written is the number of bytes written so far.
func (in *IncomingFile) Written() int64 { return in.n }

// Write implements io.Writer. Writing past the announced size writes
// nothing of the excess and fails with ErrSizeMismatch.
func (in *IncomingFile) Write(p []byte) (int, error) {
	if lim := in.store.MaxSize; in.size < 0 && lim > 0 && in.n+int64(len(p)) > lim {
		return 0, fmt.Errorf("filetransfer: %s: more than %d bytes: %w", in.name, lim, ErrTooLarge)
	}
	if in.size >= 0 && in.n+int64(len(p)) > in.size {
		k := int(in.size - in.n)
		n, err := in.write(p[:k])
		if err != nil {
			return n, err
		}
		return n, fmt.Errorf("filetransfer: %s: peer sent more than %d bytes: %w", in.name, in.size, ErrSizeMismatch)
	}
	return in.write(p)
}

func (in *IncomingFile) write(p []byte) (int, error) {
	n, err := in.f.Write(p)
	in.h.Write(p[:n])
	in.n += int64(n)
	if in.n-in.flushed >= writebackEvery {
		// Let the disk work while the network does: the fsync of Commit
		// then waits for the last few MiB, not the whole file.
		startWriteback(in.f, in.flushed, in.n-in.flushed)
		in.flushed = in.n
	}
	in.checkpoint(false)
	if err != nil {
		return n, fmt.Errorf("filetransfer: write %s: %w", in.tmp, err)
	}
	return n, nil
}

// Sums returns the hashes of what was written.
func (in *IncomingFile) Sums() []Hash { return in.h.Sums() }

// Verify checks what was written against the hashes the peer sent. Hashes
// of algorithms that were not computed while writing are computed now by
// re-reading the temporary file, if they are supported.
func (in *IncomingFile) Verify(want []Hash) (Verification, error) {
	got := in.h.Sums()
	var extra []string
	strong := false // a strong hash the peer sent is already in got
	for _, w := range want {
		if len(w.Value) == 0 || !Supported(w.Algo) {
			continue
		}
		if _, ok := findHash(got, w.Algo); !ok {
			extra = append(extra, w.Algo)
		} else if !weak(w.Algo) {
			strong = true
		}
	}
	// Only SHA-256 (and the algorithms the offer named) are computed while
	// the bytes arrive. A hash announced only later (Conversations sends
	// sha-1 and sha-256 in a checksum after the bytes) costs a second pass
	// over the file, unless a strong hash we have already settles it: a
	// matching SHA-256 verifies the file, and a SHA-1 next to it adds
	// nothing worth reading the file again for.
	if len(extra) > 0 && !strong {
		more, err := HashReader(io.NewSectionReader(in.f, 0, in.n), extra...)
		if err != nil {
			return Verification{}, fmt.Errorf("filetransfer: rehash %s: %w", in.tmp, err)
		}
		got = append(got, more...)
	}
	return Verify(got, want)
}

// Commit checks the size, syncs the data and gives the file its final name
// in the Store's directory, never replacing an existing file. It returns the
// final path. After a failed Commit, call Abort.
func (in *IncomingFile) Commit() (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.done {
		return "", fmt.Errorf("filetransfer: commit %s: already finished", in.name)
	}
	if in.size >= 0 && in.n != in.size {
		return "", fmt.Errorf("filetransfer: commit %s: got %d of %d bytes: %w", in.name, in.n, in.size, ErrSizeMismatch)
	}
	in.res.wait()
	if err := in.f.Sync(); err != nil {
		return "", fmt.Errorf("filetransfer: commit %s: sync: %w", in.name, err)
	}
	if err := in.f.Close(); err != nil {
		return "", fmt.Errorf("filetransfer: commit %s: close: %w", in.name, err)
	}
	path, err := in.store.place(in.tmp, in.name, "")
	if err != nil {
		// Keep the state consistent: the temp file is closed; Abort
		// only removes or renames it.
		in.f = nil
		return "", fmt.Errorf("filetransfer: commit %s: %w", in.name, err)
	}
	in.done = true
	in.release(true)
	return path, nil
}

// Abort ends a failed transfer: the temporary file is removed, or with
// KeepPartial renamed to "<name>.failed". It returns the path kept, if any.
// Abort after Commit does nothing.
func (in *IncomingFile) Abort() (string, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.done {
		return "", nil
	}
	in.done = true
	in.res.wait()
	if r := in.res; r != nil && r.keep && in.f != nil && in.n > 0 {
		// Kept for resume: the sidecar records what is durably on disk.
		in.checkpoint(true)
		in.f.Close()
		in.release(false)
		return "", nil
	}
	in.release(true)
	if in.f != nil {
		in.f.Close()
	}
	if in.store.KeepPartial {
		path, err := in.store.place(in.tmp, in.name, ".failed")
		if err == nil {
			return path, nil
		}
		// Could not rename: it stays as .part.
		return in.tmp, fmt.Errorf("filetransfer: keep partial %s: %w", in.name, err)
	}
	if err := os.Remove(in.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("filetransfer: remove %s: %w", in.tmp, err)
	}
	return "", nil
}

// place gives the temporary file tmp (in Dir) its final name rel+suffix
// (rel: a sanitised relative path, see StoredName), creating the
// directories of rel, never replacing an existing file, and returns the
// final path. Every step goes through an os.Root on Dir: no symbolic link,
// wherever it was planted, takes a step out of Dir.
func (s *Store) place(tmp, rel, suffix string) (string, error) {
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", s.Dir, err)
	}
	defer root.Close()
	dir, name := path.Split(rel)
	if dir != "" {
		if dir, err = makeDirs(root, strings.Split(strings.TrimSuffix(dir, "/"), "/")); err != nil {
			return "", err
		}
	}
	final, err := placeUnique(root, filepath.Base(tmp), dir, name, suffix)
	if err != nil {
		return "", err
	}
	syncDir(root, dir)
	return filepath.Join(s.Dir, filepath.FromSlash(final)), nil
}

// makeDirs creates the directories comps (sanitised names) under root, one
// level at a time, and returns the relative path of the deepest. A
// component that exists as anything but a real directory (a regular file,
// a symbolic link even to a directory inside root) is not used: the first
// free "name (n)" is created instead, so that files of one folder land
// together.
func makeDirs(root *os.Root, comps []string) (string, error) {
	cur := ""
	for _, c := range comps {
		found := false
		for i := 0; i < maxCollisions && !found; i++ {
			p := path.Join(cur, candidateName(c, "", "", i))
			err := root.Mkdir(p, 0o700)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("create directory %s: %w", p, err)
			}
			if fi, err := root.Lstat(p); err == nil && fi.IsDir() {
				cur, found = p, true
			}
		}
		if !found {
			return "", fmt.Errorf("no free directory name for %s after %d tries", c, maxCollisions)
		}
	}
	return cur, nil
}

// placeUnique gives the file at tmp (relative to root) the name
// name+suffix in dir (relative to root, "" for root itself), or
// "stem (n)ext"+suffix for the first n that does not exist, without ever
// replacing an existing file, and removes tmp. It returns the path relative
// to root.
func placeUnique(root *os.Root, tmp, dir, name, suffix string) (string, error) {
	stem, ext := splitExt(name)
	linkOK := true
	for i := 0; i < maxCollisions; i++ {
		cand := candidateName(stem, ext, suffix, i)
		p := path.Join(dir, cand)
		if linkOK {
			// A hard link fails with EEXIST if the name is taken: the
			// check and the creation are one atomic step.
			err := root.Link(tmp, p)
			if err == nil {
				if err := root.Remove(tmp); err != nil {
					return p, fmt.Errorf("remove temporary file: %w", err)
				}
				return p, nil
			}
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			// No hard links here (some file systems): use an exclusive
			// placeholder, then rename over our own placeholder.
			linkOK = false
		}
		ph, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("create %s: %w", p, err)
		}
		ph.Close()
		if err := root.Rename(tmp, p); err != nil {
			root.Remove(p)
			return "", fmt.Errorf("rename to %s: %w", p, err)
		}
		return p, nil
	}
	return "", fmt.Errorf("no free name for %s after %d tries", name, maxCollisions)
}

// candidateName is stem+ext+suffix for i == 0, else "stem (i)"+ext+suffix,
// with the stem shortened so that the whole fits in MaxNameLen bytes.
func candidateName(stem, ext, suffix string, i int) string {
	tag := ""
	if i > 0 {
		tag = " (" + strconv.Itoa(i) + ")"
	}
	room := MaxNameLen - len(tag) - len(ext) - len(suffix)
	if len(stem) > room {
		stem = truncUTF8(stem, room)
	}
	return stem + tag + ext + suffix
}

// splitExt splits "a.tar.gz" into "a.tar", ".gz". A name that is only an
// extension, or whose extension is implausibly long, has none.
func splitExt(name string) (string, string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || len(name)-i > 32 {
		return name, ""
	}
	return name[:i], name[i:]
}

// truncUTF8 cuts s to at most n bytes without splitting a rune.
func truncUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// windowsReserved are device names Windows reserves with any extension
// (CON, CON.txt, ...).
var windowsReserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true,
	"COM0": true, "COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true,
	"COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT0": true, "LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true,
	"LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
	"COM¹": true, "COM²": true, "COM³": true, "LPT¹": true, "LPT²": true, "LPT³": true,
}

// SanitizeName turns a name a peer sent into a safe file name for any common
// file system (XEP-0234 §12):
//
//   - only the last element of a path survives, with both "/" and "\" as
//     separators ("../../etc/passwd" → "passwd", "C:\x" → "x");
//   - control characters, invalid UTF-8, the characters Windows forbids
//     (<>:"|?*) and Unicode format characters (bidi overrides that disguise
//     an extension) become "_";
//   - leading dots (hidden files, "." and "..") and spaces, and trailing
//     dots and spaces, are removed;
//   - Windows device names (CON, NUL, COM1, LPT1, ..., also with an
//     extension) get a "_" prefix;
//   - the result is at most MaxNameLen bytes, cut in the stem so that the
//     extension survives;
//   - an empty result is "file".
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '_'
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		case unicode.Is(unicode.Cf, r): // U+202E and friends
			return '_'
		case r == utf8.RuneError:
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ". ")
	name = strings.TrimRight(name, ". ")
	if name == "" {
		return "file"
	}
	base := name
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	if windowsReserved[strings.ToUpper(strings.TrimRight(base, " "))] {
		name = "_" + name
	}
	if len(name) > MaxNameLen {
		stem, ext := splitExt(name)
		name = truncUTF8(stem, MaxNameLen-len(ext)) + ext
		name = strings.TrimRight(name, ". ")
	}
	return name
}

// SanitizePath turns a name a peer sent into a safe relative path with "/"
// separators, for a file that keeps its place in a folder (XEP-0234 §12:
// the receiver must not trust the name):
//
//   - both "/" and "\" separate components; a leading separator (an
//     absolute path) and the "\\" of a UNC path are dropped with the
//     empty components;
//   - ".", ".." and other components of only dots and spaces are dropped,
//     never resolved ("a/../../x" → "a/x", "../x" → "x");
//   - every other component is sanitised like a file name (SanitizeName:
//     no hidden names, no control or Windows-forbidden characters, no
//     device names, at most MaxNameLen bytes);
//   - at most MaxDepth directories are kept, and only as many as fit in
//     MaxPathLen bytes together with the file name: the deeper ones are
//     dropped (the file lands in the deepest directory kept);
//   - an empty result is "file".
//
// The result never starts with "/" and has no "." or ".." component; it is
// still a plain string: a Store creates the directories without following
// symbolic links out of its Dir.
//
// A deliberate deviation: XEP-0234 §5 (<name/>) says a name SHOULD NOT
// contain directory structure and §12 that a receiver SHOULD escape path
// separators. We keep them as folders (what a folder transfer needs), with
// the dangers of §12 (absolute paths, "../") removed component by
// component; Store.Flat follows the XEP's letter (SanitizeName).
func SanitizePath(name string) string {
	name = strings.ToValidUTF8(name, "_")
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' })
	keep := parts[:0]
	for _, p := range parts {
		if strings.Trim(p, ". ") != "" {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return "file"
	}
	file := SanitizeName(keep[len(keep)-1])
	var out []string
	total := len(file)
	for _, d := range keep[:len(keep)-1] {
		c := SanitizeName(d)
		if len(out) >= MaxDepth || total+len(c)+1 > MaxPathLen {
			break
		}
		out = append(out, c)
		total += len(c) + 1
	}
	return strings.Join(append(out, file), "/")
}

// syncDir makes a rename in dir (relative to root) durable where the OS
// supports syncing a directory.
func syncDir(root *os.Root, dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if dir == "" {
		dir = "."
	}
	if d, err := root.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
