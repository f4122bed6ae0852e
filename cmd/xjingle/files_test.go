package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestExpandArgs(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "photos")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o700))
	must(os.Mkdir(filepath.Join(dir, "empty"), 0o700))
	for name, body := range map[string]string{
		"b.txt": "bb", "a.txt": "a", "sub/c.txt": "ccc", "sub/deeper/d.txt": "dddd",
	} {
		must(os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(body), 0o600))
	}
	secret := filepath.Join(root, "secret")
	must(os.WriteFile(secret, []byte("do not send"), 0o600))
	// Links are skipped, to a file or to a folder, inside or outside.
	must(os.Symlink(secret, filepath.Join(dir, "link-out")))
	must(os.Symlink("a.txt", filepath.Join(dir, "link-in")))
	must(os.Symlink(root, filepath.Join(dir, "sub", "loop")))
	// A named pipe and a socket are skipped.
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	defer l.Close()
	plain := filepath.Join(root, "plain.bin")
	must(os.WriteFile(plain, []byte("p"), 0o600))

	var warn bytes.Buffer
	items, err := expandArgs([]string{plain, dir + "/"}, &warn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.name)
		if fi, err := os.Lstat(it.path); err != nil || !fi.Mode().IsRegular() || fi.Size() != it.size {
			t.Errorf("%s: %v %v (size %d)", it.path, fi, err, it.size)
		}
	}
	want := "plain.bin photos/a.txt photos/b.txt photos/sub/c.txt photos/sub/deeper/d.txt"
	if strings.Join(got, " ") != want {
		t.Errorf("items %v, want %s", got, want)
	}
	for _, skipped := range []string{"link-out: symbolic link", "link-in: symbolic link", "loop: symbolic link", "fifo: named pipe", "sock: socket"} {
		if !strings.Contains(warn.String(), skipped) {
			t.Errorf("no warning %q in:\n%s", skipped, warn.String())
		}
	}
	// Deterministic: the same order again.
	again, _ := expandArgs([]string{plain, dir}, &bytes.Buffer{})
	for i := range again {
		if again[i] != items[i] {
			t.Fatalf("second walk differs at %d: %+v vs %+v", i, again[i], items[i])
		}
	}

	// A folder named through a link is walked under the link's name.
	alias := filepath.Join(root, "alias")
	must(os.Symlink(dir, alias))
	items, err = expandArgs([]string{alias}, &bytes.Buffer{})
	if err != nil || len(items) != 4 || items[0].name != "alias/a.txt" {
		t.Fatalf("through a link: %+v %v", items, err)
	}

	// "." is the current folder's real name.
	if n := folderName("."); n == "." || n == "" || strings.Contains(n, "/") {
		t.Errorf("folderName(.) = %q", n)
	}

	// Not a file nor a folder: an error.
	if _, err := expandArgs([]string{filepath.Join(dir, "fifo")}, &bytes.Buffer{}); err == nil {
		t.Error("a named pipe argument was accepted")
	}
	if _, err := expandArgs([]string{filepath.Join(root, "missing")}, &bytes.Buffer{}); err == nil {
		t.Error("a missing argument was accepted")
	}
}
