package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// startMultiReceiver starts "xjingle receive" (no --once) as bob and
// waits until it is online; every JSON line it prints goes to the returned
// channel. Stop it by cancelling ctx.
func (e *cliEnv) startMultiReceiver(ctx context.Context, t *testing.T, dir string, extra ...string) (*exec.Cmd, <-chan fileReport) {
	t.Helper()
	args := append([]string{"receive", "--json", "--dir", dir, "--from", e.alice.JID}, extra...)
	rc := e.cmd(ctx, t, e.bob, args...)
	stdout, err := rc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := rc.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	reports := make(chan fileReport, 16)
	go func() {
		defer close(reports)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r fileReport
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("receiver printed %q: %v", sc.Text(), err)
				continue
			}
			reports <- r
		}
	}()
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), `"event":"ready"`) {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case ok := <-ready:
		if !ok {
			rc.Wait()
			t.Fatal("receiver did not come online")
		}
	case <-ctx.Done():
		t.Fatal("receiver did not come online in time")
	}
	return rc, reports
}

// TestCLIFolder sends a plain file and a folder (3 files in 2 levels, plus
// a symbolic link that must be skipped) over SOCKS5 on loopback; the
// receiver recreates the tree inside its --dir (and with --flat puts every
// file directly in it); every hash matches.
func TestCLIFolder(t *testing.T) {
	e := newCLIEnv(t)
	src := t.TempDir()
	tree := filepath.Join(src, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{} // name sent → sha256
	_, sums["tree/a.bin"] = writeRandom(t, tree, "a.bin", 300<<10)
	_, sums["tree/sub/b.bin"] = writeRandom(t, filepath.Join(tree, "sub"), "b.bin", 1<<20)
	_, sums["tree/sub/c.bin"] = writeRandom(t, filepath.Join(tree, "sub"), "c.bin", 1)
	plain, plainSum := writeRandom(t, src, "plain.bin", 64<<10)
	sums["plain.bin"] = plainSum
	secret, _ := writeRandom(t, t.TempDir(), "secret", 10)
	if err := os.Symlink(secret, filepath.Join(tree, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	to := "bob@" + e.bed.Domain

	for _, tc := range []struct {
		name string
		flag []string
		// where each name sent lands, relative to the inbox
		stored func(name string) string
	}{
		{"tree", nil, func(n string) string { return n }},
		{"flat", []string{"--flat"}, func(n string) string { return filepath.Base(n) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			inbox := t.TempDir()
			rctx, rcancel := context.WithCancel(ctx)
			rc, reports := e.startMultiReceiver(rctx, t, inbox, tc.flag...)
			defer func() { rcancel(); rc.Wait() }()

			sc := e.cmd(ctx, t, e.alice, "send", "--json", "--interface", "lo", "--transports", "socks5", "--to", to, plain, tree)
			var serr strings.Builder
			sc.Stderr = &serr
			sout, err := sc.Output()
			if err != nil {
				t.Fatalf("send: %v\nstdout %s\nstderr %s", err, sout, serr.String())
			}
			if !strings.Contains(serr.String(), "link: symbolic link") {
				t.Errorf("no warning about the skipped link: %s", serr.String())
			}
			// The sender: one line per file, in order, all over SOCKS5.
			var sentNames []string
			dec := json.NewDecoder(strings.NewReader(string(sout)))
			for dec.More() {
				var r fileReport
				if err := dec.Decode(&r); err != nil {
					t.Fatalf("send output %q: %v", sout, err)
				}
				sentNames = append(sentNames, r.Name)
				if !r.Verified || r.SHA256 != sums[r.Name] || r.Transport != "socks5" || r.Error != "" {
					t.Errorf("sender report %+v", r)
				}
			}
			if got, want := strings.Join(sentNames, " "), "plain.bin tree/a.bin tree/sub/b.bin tree/sub/c.bin"; got != want {
				t.Errorf("sent %s, want %s", got, want)
			}
			// The receiver: the same four, where they belong.
			got := map[string]fileReport{}
			for len(got) < len(sums) {
				select {
				case r, ok := <-reports:
					if !ok {
						t.Fatalf("receiver ended after %d files", len(got))
					}
					got[r.Name] = r
				case <-ctx.Done():
					t.Fatalf("receiver reported %d of %d files", len(got), len(sums))
				}
			}
			for name, sum := range sums {
				want := tc.stored(name)
				r, ok := got[want]
				if !ok {
					t.Errorf("no report for %s (got %v)", want, got)
					continue
				}
				if !r.Verified || r.SHA256 != sum || r.Path != filepath.Join(inbox, filepath.FromSlash(want)) || r.Transport != "socks5" {
					t.Errorf("receiver report %+v, want %s verified", r, want)
				}
				if fileSum(t, filepath.Join(inbox, filepath.FromSlash(want))) != sum {
					t.Errorf("%s: wrong content", want)
				}
			}
			// Nothing else in the inbox: no link, no temporary file.
			var files []string
			filepath.WalkDir(inbox, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(inbox, p)
					files = append(files, filepath.ToSlash(rel))
				}
				return nil
			})
			sort.Strings(files)
			var want []string
			for name := range sums {
				want = append(want, tc.stored(name))
			}
			sort.Strings(want)
			if strings.Join(files, " ") != strings.Join(want, " ") {
				t.Errorf("inbox holds %v, want %v", files, want)
			}
		})
	}
}

// TestCLIFolderHuman: without --json, send ends with the summary line.
func TestCLIFolderHuman(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tree := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(filepath.Join(tree, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, tree, "one.bin", 1_000_000)
	writeRandom(t, filepath.Join(tree, "x"), "two.bin", 500_000)
	rctx, rcancel := context.WithCancel(ctx)
	rc, reports := e.startMultiReceiver(rctx, t, t.TempDir())
	defer func() { rcancel(); rc.Wait() }()
	out, err := e.cmd(ctx, t, e.alice, "send", "--to", "bob@"+e.bed.Domain, tree).Output()
	if err != nil {
		t.Fatalf("send: %v (%s)", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; last != "2 of 2 files sent, 1.5 MB" {
		t.Errorf("last line %q, want the summary; output:\n%s", last, out)
	}
	for _, want := range []string{"ok     docs/one.bin", "ok     docs/x/two.bin"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for range 2 {
		select {
		case r := <-reports:
			if !r.Verified {
				t.Errorf("receiver report %+v", r)
			}
		case <-ctx.Done():
			t.Fatal("receiver did not report both files")
		}
	}
}
