package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// resumeReport is the part of a transfer report the resume test checks.
type resumeReport struct {
	fileReport
	Offset int64 `json:"offset"`
}

// TestCLIResumeIBB kills the receiver in the middle of a 32 MiB IBB
// transfer, then runs both commands again: the second run moves only the
// rest (XEP-0234 §6.4) and the file's hash matches.
func TestCLIResumeIBB(t *testing.T) {
	if testing.Short() {
		t.Skip("32 MiB over IBB")
	}
	const size = 32 << 20
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	path, sum := writeRandom(t, t.TempDir(), "resume.bin", size)
	inbox := t.TempDir()
	to := "bob@" + e.bed.Domain

	// First run: kill the receiver once its partial file is big enough
	// (past two 4 MiB checkpoints of its sidecar).
	rc, _ := e.startReceiver(ctx, t, inbox)
	sc := e.cmd(ctx, t, e.alice, "send", "--json", "--transports", "ibb", "--to", to, path)
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var part string
wait:
	for {
		select {
		case <-ctx.Done():
			t.Fatal("the partial file never reached 12 MiB")
		case <-tick.C:
			ms, _ := filepath.Glob(filepath.Join(inbox, ".xjingle-resume-*.part"))
			if len(ms) == 1 {
				if fi, err := os.Stat(ms[0]); err == nil && fi.Size() >= 12<<20 {
					part = ms[0]
					break wait
				}
			}
		}
	}
	if err := rc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rc.Wait()
	if err := sc.Wait(); err == nil {
		t.Error("first send succeeded although the receiver was killed")
	}
	if _, err := os.Stat(strings.TrimSuffix(part, ".part") + ".json"); err != nil {
		t.Fatalf("no sidecar next to %s: %v", part, err)
	}

	// Second run: resume.
	rc, rout := e.startReceiver(ctx, t, inbox)
	sout, err := e.cmd(ctx, t, e.alice, "send", "--json", "--transports", "ibb", "--to", to, path).Output()
	if err != nil {
		t.Errorf("second send: %v (stdout %s)", err, sout)
	}
	if err := rc.Wait(); err != nil {
		t.Errorf("second receive: %v (stdout %s)", err, rout)
	}
	var sent, got resumeReport
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("send output %q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("receive output %q: %v", rout, err)
	}
	t.Logf("resumed at %d: sent %d, received %d bytes", got.Offset, sent.Bytes, got.Bytes)
	if sent.Offset < 8<<20 || sent.Bytes != size-sent.Offset || !sent.Verified || sent.SHA256 != sum {
		t.Errorf("sender report %+v", sent)
	}
	if got.Offset != sent.Offset || got.Bytes != size-got.Offset || !got.Verified || got.SHA256 != sum {
		t.Errorf("receiver report %+v", got)
	}
	if fsum := fileSum(t, filepath.Join(inbox, "resume.bin")); fsum != sum {
		t.Errorf("file on disk has sha256 %s, want %s", fsum, sum)
	}
	if entries, _ := os.ReadDir(inbox); len(entries) != 1 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("inbox holds %v, want just the file", names)
	}
}

// TestCLIResume128 kills the receiver after roughly half of a 128 MiB
// SOCKS5 transfer (the sender paced with --rate-limit so that the kill
// lands mid-file), then runs both commands again: the second run starts at
// the kept partial size (XEP-0234 <range/>) and moves only the rest, which
// both sides count at the stream (Result.Bytes: what the sender wrote into
// the bytestream, what the receiver read from it); the file's hash matches.
func TestCLIResume128(t *testing.T) {
	if testing.Short() {
		t.Skip("128 MiB")
	}
	const size = 128 << 20
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path, sum := writeRandomFast(t, t.TempDir(), "resume128.bin", size)
	inbox := t.TempDir()
	to := "bob@" + e.bed.Domain
	send := []string{"send", "--json", "--transports", "socks5", "--to", to}

	// First run: 40 MB/s, so half the file takes about 1.7 s; kill the
	// receiver once its partial file passes 64 MiB.
	rc, _ := e.startReceiver(ctx, t, inbox)
	sc := e.cmd(ctx, t, e.alice, append(send, "--rate-limit", "40M", path)...)
	if err := sc.Start(); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var part string
	var killAt int64
wait:
	for {
		select {
		case <-ctx.Done():
			t.Fatal("the partial file never reached 64 MiB")
		case <-tick.C:
			ms, _ := filepath.Glob(filepath.Join(inbox, ".xjingle-resume-*.part"))
			if len(ms) == 1 {
				if fi, err := os.Stat(ms[0]); err == nil && fi.Size() >= size/2 {
					part, killAt = ms[0], fi.Size()
					break wait
				}
			}
		}
	}
	if err := rc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rc.Wait()
	if err := sc.Wait(); err == nil {
		t.Error("first send succeeded although the receiver was killed")
	}
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatalf("partial file gone after the kill: %v", err)
	}
	kept := fi.Size()
	t.Logf("receiver killed at %d bytes; %d bytes kept", killAt, kept)
	if kept >= size {
		t.Fatalf("the whole file arrived before the kill (%d bytes): no resume to test", kept)
	}

	// Second run, unpaced.
	rc, rout := e.startReceiver(ctx, t, inbox)
	sout, err := e.cmd(ctx, t, e.alice, append(send, path)...).Output()
	if err != nil {
		t.Errorf("second send: %v (stdout %s)", err, sout)
	}
	if err := rc.Wait(); err != nil {
		t.Errorf("second receive: %v (stdout %s)", err, rout)
	}
	var sent, got resumeReport
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("send output %q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("receive output %q: %v", rout, err)
	}
	t.Logf("resumed at offset %d (%.0f%%): sender wrote %d bytes (%.0f%% of the file) over %s, receiver read %d",
		got.Offset, 100*float64(got.Offset)/size, sent.Bytes, 100*float64(sent.Bytes)/size, sent.Transport, got.Bytes)
	// The receiver resumes from its last checkpoint of the partial file
	// (every 4 MiB), never past what it kept.
	if got.Offset > kept || got.Offset < killAt-8<<20 {
		t.Errorf("resumed at %d, want at most the %d bytes kept and about the %d at the kill", got.Offset, kept, killAt)
	}
	if sent.Offset != got.Offset || !sent.Verified || sent.SHA256 != sum || sent.Transport != "socks5" {
		t.Errorf("sender report %+v", sent)
	}
	// Only the remainder crossed the wire.
	if sent.Bytes != size-sent.Offset || got.Bytes != size-got.Offset {
		t.Errorf("sender wrote %d, receiver read %d bytes; want the %d after the offset", sent.Bytes, got.Bytes, size-got.Offset)
	}
	if float64(sent.Bytes) >= 0.6*size {
		t.Errorf("second run moved %d bytes, %.0f%% of the file; want < 60%%", sent.Bytes, 100*float64(sent.Bytes)/size)
	}
	if !got.Verified || got.SHA256 != sum {
		t.Errorf("receiver report %+v", got)
	}
	if fsum := fileSum(t, filepath.Join(inbox, "resume128.bin")); fsum != sum {
		t.Errorf("file on disk has sha256 %s, want %s", fsum, sum)
	}
	if entries, _ := os.ReadDir(inbox); len(entries) != 1 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Errorf("inbox holds %v, want just the file", names)
	}
}
