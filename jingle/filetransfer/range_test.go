package filetransfer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// rangeDecision accepts every offer for the byte range r.
func rangeDecision(r Range) Option {
	return WithAcceptDecision(func(context.Context, *Offer) (Decision, error) {
		return Decision{Accept: true, Range: &r}, nil
	})
}

// TestReceiveRange: a receiver asks for a byte range in its session-accept
// (XEP-0234 §6.1 Example 3, §6.4); the sender sends exactly those bytes;
// they are stored as "<name>.range-<offset>-<end>", checked by size, not by
// the whole file's hash.
func TestReceiveRange(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offered  string
		r        Range
		off, n   int64
		wantName string
	}{
		{"offset and length", "f.bin", Range{Offset: 100, Length: 200}, 100, 200, "f.bin.range-100-300"},
		{"to the end", "f.bin", Range{Offset: 900}, 900, 100, "f.bin.range-900-1000"},
		{"whole file as a range", "f.bin", Range{}, 0, 1000, "f.bin.range-0-1000"},
		{"nested name", "d/../f.bin", Range{Offset: 1, Length: 2}, 1, 2, "d/f.bin.range-1-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// WithRequireHash does not refuse a range: it cannot be
			// verified by the whole file's hash.
			alice, bob := newPair(t, nil, []Option{rangeDecision(tc.r), WithRequireHash(true)})
			path, data := writeFile(t, "f.bin", 1000)
			res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe, Name: tc.offered})
			if err != nil || res.Offset != tc.off || res.Bytes != tc.n || !res.Verified || res.SHA256 != sha256hex(data) {
				t.Fatalf("send: %+v %v", res, err)
			}
			tr, rr := bob.next(t)
			want := data[tc.off : tc.off+tc.n]
			if rr.Err != nil || rr.Verified || rr.VerifyNote != VerifyNoteRange || rr.Offset != tc.off || rr.Bytes != tc.n ||
				rr.Size != 1000 || rr.SHA256 != sha256hex(want) || rr.Name != tc.wantName {
				t.Fatalf("receive: %+v", rr)
			}
			if tr.Offset() != tc.off || tr.Size() != 1000 || tr.Bytes() != tc.n {
				t.Fatalf("transfer offset %d size %d bytes %d", tr.Offset(), tr.Size(), tr.Bytes())
			}
			if rr.Path != filepath.Join(bob.store.Dir, filepath.FromSlash(tc.wantName)) {
				t.Fatalf("stored at %s", rr.Path)
			}
			if got, _ := os.ReadFile(rr.Path); !bytes.Equal(got, want) {
				t.Fatalf("stored %d bytes, not the range", len(got))
			}
			if files := regularFiles(t, bob.store.Dir); len(files) != 1 {
				t.Fatalf("store holds %v", files)
			}
			if st, _ := alice.next(t); st.Offset() != tc.off {
				t.Fatalf("sender's transfer offset %d", st.Offset())
			}
		})
	}
}

// TestReceiveRangeOutside: a range outside the offered size fails on the
// receiver (ErrBadRange) and the sender learns it (failed-application);
// nothing is stored.
func TestReceiveRangeOutside(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{rangeDecision(Range{Offset: 900, Length: 200})})
	path, _ := writeFile(t, "f.bin", 1000)
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe})
	if err == nil || !errors.Is(err, ErrPeerGone) || res.Bytes != 0 {
		t.Fatalf("send: %+v %v", res, err)
	}
	_, rr := bob.next(t)
	if !errors.Is(rr.Err, ErrBadRange) || rr.Path != "" {
		t.Fatalf("receive: %+v", rr)
	}
	if files := regularFiles(t, bob.store.Dir); len(files) != 0 {
		t.Fatalf("store holds %v", files)
	}
}

func TestWantRange(t *testing.T) {
	for _, tc := range []struct {
		r      Range
		size   int64
		off, n int64
		bad    bool
	}{
		{Range{Offset: 10, Length: 5}, 100, 10, 5, false},
		{Range{Offset: 10}, 100, 10, 90, false},
		{Range{Offset: 100}, 100, 100, 0, false},
		{Range{Offset: 101}, 100, 0, 0, true},
		{Range{Offset: 10, Length: 91}, 100, 0, 0, true},
		{Range{Offset: 10, Length: 5}, -1, 10, 5, false},
		{Range{Offset: 10}, -1, 0, 0, true},
		{Range{Offset: -1}, 100, 0, 0, true},
	} {
		off, n, err := wantRange(tc.r, tc.size)
		if (err != nil) != tc.bad || (err != nil && !errors.Is(err, ErrBadRange)) || off != tc.off || n != tc.n {
			t.Errorf("wantRange(%+v, %d) = %d, %d, %v", tc.r, tc.size, off, n, err)
		}
	}
}
