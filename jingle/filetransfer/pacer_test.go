package filetransfer

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	p := &pacer{ctx: context.Background(), w: io.Discard, rate: 100_000}
	start := time.Now()
	chunk := make([]byte, 10_000)
	for range 10 {
		if _, err := p.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	// The last write is due when the 90 kB before it are: 0.9 s.
	if d := time.Since(start); d < 850*time.Millisecond || d > 5*time.Second {
		t.Errorf("100 kB at 100 kB/s took %v, want about 0.9 s", d)
	}
	if p.sent != 100_000 {
		t.Errorf("sent %d", p.sent)
	}
}

func TestPacerCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pacer{ctx: ctx, w: io.Discard, rate: 1}
	if _, err := p.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	// Due in 10 s at 1 B/s: the cancel must end the wait.
	if _, err := p.Write(make([]byte, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("write: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

// TestPacerSplitsLargeWrites: one write larger than pacerChunk is spread
// out, not sent at once (the copy buffer is larger than the pacing step).
func TestPacerSplitsLargeWrites(t *testing.T) {
	var w countingWriter
	p := &pacer{ctx: context.Background(), w: &w, rate: 1_000_000}
	start := time.Now()
	n, err := p.Write(make([]byte, 400_000))
	if err != nil || n != 400_000 {
		t.Fatalf("write: %d, %v", n, err)
	}
	// Chunks of 64 KiB: the last is due when the 6×64 KiB before it are,
	// at 0.39 s.
	if d := time.Since(start); d < 350*time.Millisecond || d > 5*time.Second {
		t.Errorf("400 kB at 1 MB/s in one write took %v, want about 0.39 s", d)
	}
	if w.writes != 7 || w.max != pacerChunk {
		t.Errorf("%d writes, largest %d; want 7 of at most %d", w.writes, w.max, pacerChunk)
	}
}

type countingWriter struct{ writes, max int }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	c.max = max(c.max, len(p))
	return len(p), nil
}
