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
