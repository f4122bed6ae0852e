package filetransfer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// resumeFiles lists the resume files (.part, .json) in dir.
func resumeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range dirNames(t, dir) {
		if strings.HasPrefix(n, resumePrefix) {
			out = append(out, n)
		}
	}
	return out
}

// newCutPair is newPair with access to the pipe hub, for cutting streams.
func newCutPair(t *testing.T) (alice, bob *side, hub *pipeHub) {
	t.Helper()
	network := xjtest.NewNetwork()
	hub = newPipeHub()
	mk := func(j string, opts ...Option) *side {
		sig := network.Add(j)
		s := &side{jid: sig.LocalJID(), store: &Store{Dir: t.TempDir(), Resume: true}, transfers: make(chan *Transfer, 16)}
		opts = append([]Option{
			WithLogger(testLogger(t).With("who", j)),
			WithChecksumWait(100 * time.Millisecond),
			WithOnTransfer(func(tr *Transfer) { s.transfers <- tr }),
		}, opts...)
		s.app = New(s.store, opts...)
		m, err := jingle.NewManager(sig, jingle.WithApplication(s.app), jingle.WithTransport(hub),
			jingle.WithLogger(testLogger(t).With("who", j, "component", "jingle")))
		if err != nil {
			t.Fatal(err)
		}
		s.m = m
		t.Cleanup(func() {
			m.Close()
			sig.Close()
		})
		return s
	}
	return mk("alice@example.test/a"), mk("bob@example.test/b", WithAcceptPolicy(AcceptAll)), hub
}

func TestResumeAfterCut(t *testing.T) {
	const size, cut = 1<<20 + 17, 512 << 10
	alice, bob, hub := newCutPair(t)
	path, data := writeFile(t, "photo.jpg", size)

	// First attempt: the stream breaks after cut bytes.
	hub.mu.Lock()
	hub.cutAfter = cut
	hub.mu.Unlock()
	if res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe}); err == nil {
		t.Fatalf("cut send succeeded: %+v", res)
	}
	_, rr := bob.next(t)
	if rr.Err == nil || rr.Bytes != cut {
		t.Fatalf("cut receive: %+v", rr)
	}
	alice.next(t)
	kept := resumeFiles(t, bob.store.Dir)
	if len(kept) != 2 {
		t.Fatalf("resume files after the cut: %v (dir %v)", kept, dirNames(t, bob.store.Dir))
	}
	if _, err := os.Stat(filepath.Join(bob.store.Dir, "photo.jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partial file under its final name: %v", err)
	}

	// Second attempt: only the rest crosses the wire.
	res, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe})
	if err != nil {
		t.Fatalf("resumed send: %v", err)
	}
	if res.Offset != cut || res.Bytes != size-cut || res.SHA256 != sha256hex(data) || !res.Verified {
		t.Fatalf("resumed send result %+v", res)
	}
	_, rr = bob.next(t)
	if rr.Err != nil || rr.Offset != cut || rr.Bytes != size-cut || rr.SHA256 != sha256hex(data) || !rr.Verified {
		t.Fatalf("resumed receive result %+v", rr)
	}
	got, err := os.ReadFile(rr.Path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("resumed file differs (%v)", err)
	}
	if names := dirNames(t, bob.store.Dir); len(names) != 1 || names[0] != "photo.jpg" {
		t.Fatalf("store holds %v", names)
	}
}

func TestNoResumeWithoutStoreResume(t *testing.T) {
	alice, bob, hub := newCutPair(t)
	bob.store.Resume = false
	path, _ := writeFile(t, "a.bin", 200<<10)
	hub.mu.Lock()
	hub.cutAfter = 100 << 10
	hub.mu.Unlock()
	if _, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe}); err == nil {
		t.Fatal("cut send succeeded")
	}
	bob.next(t)
	if names := dirNames(t, bob.store.Dir); len(names) != 0 {
		t.Fatalf("store holds %v", names)
	}
}

// rangeReceiver accepts with a <range/> of its choosing in its
// session-accept and reads whatever comes.
type rangeReceiver struct {
	r     Range
	ended chan jingle.Reason // cap 1: why the session ended
}

func (*rangeReceiver) Namespace() string { return NS }

func (r *rangeReceiver) HandleSession(ctx context.Context, s *jingle.Session) {
	c := s.Contents()[0]
	d, err := ParseDescription(c.Description)
	if err != nil {
		return
	}
	f := d.File
	f.Range = &r.r
	c.SetAcceptDescription(Description{File: f}.Element())
	if err := s.Accept(ctx); err != nil {
		return
	}
	select {
	case <-s.Done():
		r.ended <- s.Reason()
	case <-ctx.Done():
	}
}

func TestSendRefusesBadRange(t *testing.T) {
	for _, r := range []Range{{Offset: 1001}, {Offset: 10, Length: 991}, {Offset: 1 << 62, Length: 1 << 62}} {
		network := xjtest.NewNetwork()
		hub := newPipeHub()
		sa, sb := network.Add("alice@example.test/a"), network.Add("bob@example.test/b")
		alice := New(nil, WithLogger(testLogger(t)))
		ma, _ := jingle.NewManager(sa, jingle.WithApplication(alice), jingle.WithTransport(hub))
		rr := &rangeReceiver{r: r, ended: make(chan jingle.Reason, 1)}
		mb, _ := jingle.NewManager(sb, jingle.WithApplication(rr), jingle.WithTransport(hub))
		path, _ := writeFile(t, "f", 1000)
		res, err := alice.Send(ctxT(t), ma, sb.LocalJID(), path, SendOptions{Transport: nsPipe})
		if !errors.Is(err, ErrBadRange) || res.Bytes != 0 {
			t.Errorf("range %+v: %+v %v", r, res, err)
		}
		select {
		case reason := <-rr.ended:
			if reason.Condition != jingle.ReasonFailedApplication {
				t.Errorf("range %+v: ended with %v", r, reason)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("range %+v: the receiver's session did not end", r)
		}
		ma.Close()
		mb.Close()
		sa.Close()
		sb.Close()
	}
}

func TestSendHonoursRange(t *testing.T) {
	// A receiver asking for bytes [100, 300) gets exactly those; the
	// checksum still carries the whole file's hash.
	network := xjtest.NewNetwork()
	hub := newPipeHub()
	sa, sb := network.Add("alice@example.test/a"), network.Add("bob@example.test/b")
	defer sa.Close()
	defer sb.Close()
	alice := New(nil, WithLogger(testLogger(t)), WithConfirmWait(100*time.Millisecond))
	alice.grace = 50 * time.Millisecond
	ma, _ := jingle.NewManager(sa, jingle.WithApplication(alice), jingle.WithTransport(hub))
	defer ma.Close()
	rr := &scriptedRangeReader{r: Range{Offset: 100, Length: 200}, got: make(chan []byte, 1)}
	mb, _ := jingle.NewManager(sb, jingle.WithApplication(rr), jingle.WithTransport(hub))
	defer mb.Close()
	path, data := writeFile(t, "f", 1000)
	res, err := alice.Send(ctxT(t), ma, sb.LocalJID(), path, SendOptions{Transport: nsPipe})
	if err != nil || res.Offset != 100 || res.Bytes != 200 || res.SHA256 != sha256hex(data) {
		t.Fatalf("%+v %v", res, err)
	}
	if got := <-rr.got; !bytes.Equal(got, data[100:300]) {
		t.Fatalf("got %d bytes, not the range", len(got))
	}
}

// scriptedRangeReader accepts with a range, reads the stream to its end and
// sends what it got on got.
type scriptedRangeReader struct {
	r   Range
	got chan []byte
}

func (*scriptedRangeReader) Namespace() string { return NS }

func (r *scriptedRangeReader) HandleSession(ctx context.Context, s *jingle.Session) {
	c := s.Contents()[0]
	d, _ := ParseDescription(c.Description)
	f := d.File
	f.Range = &r.r
	c.SetAcceptDescription(Description{File: f}.Element())
	if err := s.Accept(ctx); err != nil {
		return
	}
	conn, err := c.Conn(ctx)
	if err != nil {
		return
	}
	defer conn.Close()
	var buf bytes.Buffer
	buf.ReadFrom(conn)
	r.got <- buf.Bytes()
	s.SendInfo(ctx, Received{Creator: c.Creator, Name: c.Name}.Element())
	select {
	case <-s.Done():
	case <-ctx.Done():
	}
}

func TestCreateResumable(t *testing.T) {
	peer := jid.MustParse("alice@example.test/a")
	date := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	f := File{Name: "x.bin", Size: 100, HasSize: true, Date: date, Range: &Range{},
		Hashes: []Hash{{Algo: AlgoSHA256, Value: bytes.Repeat([]byte{1}, 32)}}}
	dir := t.TempDir()
	st := &Store{Dir: dir, Resume: true}

	// A first attempt writes 40 bytes and fails.
	in, off, err := st.CreateResumable(peer, f)
	if err != nil || off != 0 {
		t.Fatal(off, err)
	}
	// A concurrent offer of the same file does not share the part file.
	in2, off2, err := st.CreateResumable(peer, f)
	if err != nil || off2 != 0 || in2.TempPath() == in.TempPath() {
		t.Fatal(off2, err)
	}
	in2.Abort()
	in.Write(bytes.Repeat([]byte{'a'}, 40))
	if kept, err := in.Abort(); err != nil || kept != "" {
		t.Fatal(kept, err)
	}

	// Another resource of the same account resumes.
	in, off, err = st.CreateResumable(jid.MustParse("alice@example.test/other"), f)
	if err != nil || off != 40 || in.Written() != 40 || in.Offset() != 40 {
		t.Fatal(off, err)
	}
	in.Abort()

	// An offer without <range/> (the sender cannot resume) starts afresh
	// and leaves the partial data alone.
	nr := f
	nr.Range = nil
	in, off, err = st.CreateResumable(peer, nr)
	if err != nil || off != 0 || strings.HasPrefix(filepath.Base(in.TempPath()), resumePrefix) {
		t.Fatal(off, err)
	}
	in.Abort()

	// Different hashes: not the same file, start over.
	other := f
	other.Hashes = []Hash{{Algo: AlgoSHA256, Value: bytes.Repeat([]byte{2}, 32)}}
	in, off, err = st.CreateResumable(peer, other)
	if err != nil || off != 0 {
		t.Fatal(off, err)
	}
	in.DropResume()
	in.Abort()
	if names := resumeFiles(t, dir); len(names) != 0 {
		t.Fatalf("dropped resume left %v", names)
	}

	// Another peer never resumes someone else's data.
	in, _, _ = st.CreateResumable(peer, f)
	in.Write([]byte("0123456789"))
	in.Abort()
	in, off, err = st.CreateResumable(jid.MustParse("mallory@example.test/m"), f)
	if err != nil || off != 0 {
		t.Fatal(off, err)
	}
	in.Abort()

	// A sidecar claiming more than the part file holds: start over.
	side := filepath.Join(dir, resumePrefix+ResumeKey(peer, f.Name, f.Size, f.Date)+resumeSide)
	b, _ := os.ReadFile(side)
	b = bytes.Replace(b, []byte(`"written":10`), []byte(`"written":90`), 1)
	if err := os.WriteFile(side, b, 0o600); err != nil {
		t.Fatal(err)
	}
	in, off, err = st.CreateResumable(peer, f)
	if err != nil || off != 0 {
		t.Fatal(off, err)
	}
	in.Write(bytes.Repeat([]byte{'b'}, 100))
	if _, err := in.Commit(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "x.bin" {
		t.Fatalf("dir after commit: %v", names)
	}
}

func FuzzParseSidecar(f *testing.F) {
	f.Add([]byte(`{"peer":"a@b","name":"x","size":10,"date":"2024-01-02T03:04:05Z","hashes":[{"Algo":"sha-256","Value":"AQID"}],"written":4}`))
	f.Add([]byte(`{"written":-1}`))
	f.Add([]byte(`{"size":1,"written":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok := parseSidecar(b)
		if ok && (st.Written < 0 || st.Written > st.Size || len(st.Hashes) > maxHashes) {
			t.Fatalf("accepted %+v", st)
		}
	})
}

// TestResumeNested: the resume state of a file in a folder is keyed by its
// whole relative name (two folders' x.bin never share a part file) and the
// resumed file is committed under its relative path.
func TestResumeNested(t *testing.T) {
	peer := jid.MustParse("alice@example.test/a")
	date := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	fa := File{Name: "d/x.bin", Size: 10, HasSize: true, Date: date, Range: &Range{}}
	fb := fa
	fb.Name = "e/x.bin"
	dir := t.TempDir()
	st := &Store{Dir: dir, Resume: true}
	in, off, err := st.CreateResumable(peer, fa)
	if err != nil || off != 0 || in.Name() != "d/x.bin" || filepath.Dir(in.TempPath()) != dir {
		t.Fatal(in.Name(), off, err)
	}
	in.Write([]byte("01234"))
	in.Abort()
	// The other folder's x.bin does not resume d/x.bin's data.
	in, off, err = st.CreateResumable(peer, fb)
	if err != nil || off != 0 {
		t.Fatal(off, err)
	}
	in.DropResume()
	in.Abort()
	in, off, err = st.CreateResumable(peer, fa)
	if err != nil || off != 5 {
		t.Fatal(off, err)
	}
	in.Write([]byte("56789"))
	p, err := in.Commit()
	if err != nil || p != filepath.Join(dir, "d", "x.bin") {
		t.Fatal(p, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "0123456789" {
		t.Fatalf("content %q", b)
	}
	if names := resumeFiles(t, dir); len(names) != 0 {
		t.Fatalf("left %v", names)
	}
}
