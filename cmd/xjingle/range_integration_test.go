package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// rangeReport is the part of a report the range test checks.
type rangeReport struct {
	fileReport
	Offset     int64  `json:"offset"`
	VerifyNote string `json:"verify_note"`
}

// TestCLIReceiveRange: "receive --once --range 1000:5000" gets exactly
// bytes [1000, 6000) of a 1 MiB file, saved as NAME.range-1000-6000 and
// reported as not verified ("byte range"); the sender sends only those.
func TestCLIReceiveRange(t *testing.T) {
	e := newCLIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path, _ := writeRandom(t, t.TempDir(), "big.bin", 1<<20)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inbox := t.TempDir()
	rc, rout := e.startReceiver(ctx, t, inbox, "--range", "1000:5000")
	sout, err := e.cmd(ctx, t, e.alice, "send", "--json", "--interface", "lo", "--to", "bob@"+e.bed.Domain, path).Output()
	if err != nil {
		t.Errorf("send: %v (stdout %s)", err, sout)
	}
	if err := rc.Wait(); err != nil {
		t.Errorf("receive: %v (stdout %s)", err, rout)
	}
	var sent, got rangeReport
	if err := json.Unmarshal(sout, &sent); err != nil {
		t.Fatalf("send output %q: %v", sout, err)
	}
	if err := json.Unmarshal(rout.Bytes(), &got); err != nil {
		t.Fatalf("receive output %q: %v", rout, err)
	}
	if sent.Offset != 1000 || sent.Bytes != 5000 || !sent.Verified || sent.Error != "" {
		t.Errorf("sender report %+v, want 5000 bytes from 1000, confirmed", sent)
	}
	want := filepath.Join(inbox, "big.bin.range-1000-6000")
	if got.Offset != 1000 || got.Bytes != 5000 || got.Verified || got.VerifyNote != "byte range" || got.Path != want || got.Error != "" {
		t.Errorf("receiver report %+v, want 5000 bytes from 1000 in %s, not verified (byte range)", got, want)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data[1000:6000]) {
		t.Errorf("stored %d bytes that are not bytes 1000-6000 of the file", len(b))
	}
	if entries, _ := os.ReadDir(inbox); len(entries) != 1 {
		t.Errorf("inbox holds %d entries, want just the range", len(entries))
	}

	// A range past the end: the receiver refuses it itself (the offer
	// says 1 MiB); both sides fail, nothing is stored.
	inbox2 := t.TempDir()
	rc, rout = e.startReceiver(ctx, t, inbox2, "--range", "1048000:1000")
	if out, err := e.cmd(ctx, t, e.alice, "send", "--json", "--to", "bob@"+e.bed.Domain, path).Output(); err == nil {
		t.Errorf("send of a refused range succeeded: %s", out)
	}
	if err := rc.Wait(); err == nil {
		t.Errorf("receive of a range past the end succeeded: %s", rout)
	}
	if entries, _ := os.ReadDir(inbox2); len(entries) != 0 {
		t.Errorf("refused range left %d entries", len(entries))
	}
}
