package filetransfer

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// The hostile-peer table: a scripted peer (mallory's raw stanzas, and a third
// JID) against the real receiving stack (jingle.Manager + this App + ibb +
// Store). Each case checks the stanza error or the session-terminate reason
// the receiver answers with, and that nothing is written outside the
// download dir nor presented under a final name when it should not be.

type hostileBed struct {
	t       *testing.T
	net     *xjtest.Network
	peer    *xjtest.Signaller // the hostile initiator
	third   *xjtest.Signaller // someone else
	bob     jid.JID
	root    string // parent of the download dir
	dir     string // the download dir
	jingles chan *jingle.Jingle
	results chan *Result
}

func newHostileBed(t *testing.T) *hostileBed {
	t.Helper()
	h := &hostileBed{t: t, net: xjtest.NewNetwork(), jingles: make(chan *jingle.Jingle, 16), results: make(chan *Result, 4)}
	h.root = t.TempDir()
	h.dir = filepath.Join(h.root, "inbox")
	if err := os.Mkdir(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	bobSig := h.net.Add("bob@example.test/b")
	h.bob = bobSig.LocalJID()
	h.peer = h.net.Add("mallory@example.test/m")
	h.third = h.net.Add("eve@example.test/e")
	// The scripted peer acks every Jingle IQ bob sends and records it.
	h.peer.HandleIQ(xml.Name{Space: jingle.NS, Local: "jingle"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		j, err := jingle.ParseJingle(iq.Payload)
		reply(nil, nil)
		if err == nil {
			h.jingles <- j
		}
	})
	h.peer.HandleIQ(xml.Name{Space: ibb.NS, Local: "close"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) { reply(nil, nil) })

	app := New(&Store{Dir: h.dir}, WithAcceptPolicy(AcceptAll), WithChecksumWait(200*time.Millisecond),
		WithOnTransfer(func(tr *Transfer) {
			go func() { <-tr.Done(); h.results <- tr.Result() }()
		}))
	ih, err := ibb.NewHandler(bobSig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := jingle.NewManager(bobSig, jingle.WithApplication(app), jingle.WithTransport(ih.JingleTransport()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Close()
		ih.Close()
		bobSig.Close()
		h.peer.Close()
		h.third.Close()
	})
	return h
}

func (h *hostileBed) iq(from *xjtest.Signaller, payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := from.SendIQ(ctx, h.bob, "set", []byte(payload))
	return err
}

func (h *hostileBed) initiate(sid, name string, size int64, hash []byte) error {
	hashEl := `<hash-used xmlns="urn:xmpp:hashes:2" algo="sha-256"/>`
	if hash != nil {
		hashEl = `<hash xmlns="urn:xmpp:hashes:2" algo="sha-256">` + base64.StdEncoding.EncodeToString(hash) + `</hash>`
	}
	var esc strings.Builder
	xml.EscapeText(&esc, []byte(name))
	return h.iq(h.peer, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="%s" initiator="%s">`+
		`<content creator="initiator" name="f" senders="initiator">`+
		`<description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><name>%s</name><size>%d</size>%s</file></description>`+
		`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" sid="ibb-%s" block-size="4096"/></content></jingle>`,
		sid, h.peer.LocalJID(), esc.String(), size, hashEl, sid))
}

// expect waits for bob's Jingle action.
func (h *hostileBed) expect(action jingle.Action) *jingle.Jingle {
	h.t.Helper()
	for {
		select {
		case j := <-h.jingles:
			if j.Action == action {
				return j
			}
		case <-time.After(10 * time.Second):
			h.t.Fatalf("no %s from the receiver", action)
			return nil
		}
	}
}

func (h *hostileBed) open(sid string) error {
	return h.iq(h.peer, fmt.Sprintf(`<open xmlns="%s" sid="ibb-%s" block-size="4096" stanza="iq"/>`, ibb.NS, sid))
}

func (h *hostileBed) data(sid string, seq int, b64 string) error {
	return h.iq(h.peer, fmt.Sprintf(`<data xmlns="%s" sid="ibb-%s" seq="%d">%s</data>`, ibb.NS, sid, seq, b64))
}

func (h *hostileBed) checksum(sid string, sum []byte) error {
	return h.iq(h.peer, fmt.Sprintf(`<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="%s">`+
		`<checksum xmlns="urn:xmpp:jingle:apps:file-transfer:5" creator="initiator" name="f"><file>`+
		`<hash xmlns="urn:xmpp:hashes:2" algo="sha-256">%s</hash></file></checksum></jingle>`, sid, base64.StdEncoding.EncodeToString(sum)))
}

// started sets up an accepted session with an open IBB stream.
func (h *hostileBed) started(sid, name string, size int64, hash []byte) {
	h.t.Helper()
	if err := h.initiate(sid, name, size, hash); err != nil {
		h.t.Fatalf("session-initiate: %v", err)
	}
	h.expect(jingle.ActionSessionAccept)
	if err := h.open(sid); err != nil {
		h.t.Fatalf("ibb open: %v", err)
	}
}

// outsideFiles lists what exists under root but outside the download dir,
// and what is in the dir.
func (h *hostileBed) files() (outside, inside []string) {
	filepath.WalkDir(h.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == h.root || p == h.dir {
			return nil
		}
		rel, _ := filepath.Rel(h.dir, p)
		if strings.HasPrefix(rel, "..") {
			outside = append(outside, p)
		} else {
			inside = append(inside, filepath.ToSlash(rel))
		}
		return nil
	})
	return outside, inside
}

// cancel ends a session from the peer's side and waits for the transfer's
// end: its temporary file must be gone afterwards.
func (h *hostileBed) cancel(sid string) {
	h.t.Helper()
	if err := h.iq(h.peer, `<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="`+sid+`"><reason><cancel/></reason></jingle>`); err != nil {
		h.t.Fatal(err)
	}
	select {
	case res := <-h.results:
		if res.Err == nil || res.Path != "" {
			h.t.Fatalf("cancelled transfer: %+v", res)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("cancelled transfer did not end")
	}
}

func wantStanzaError(t *testing.T, err error, cond, app string) {
	t.Helper()
	var se *jingle.StanzaError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want stanza error %s/%s", err, cond, app)
	}
	if se.Condition != cond || se.AppCondition.Local != app {
		t.Fatalf("got %s/%s, want %s/%s", se.Condition, se.AppCondition.Local, cond, app)
	}
}

func enc64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestHostilePeer(t *testing.T) {
	payload := []byte("the real bytes of a small file\n")
	sum := sha256.Sum256(payload)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *hostileBed)
		// inside is what the download dir must hold afterwards.
		inside []string
	}{
		{"path traversal name is sanitised", func(t *testing.T, h *hostileBed) {
			h.started("s1", "../../etc/passwd", int64(len(payload)), sum[:])
			if err := h.data("s1", 0, enc64(payload)); err != nil {
				t.Fatal(err)
			}
			res := <-h.results
			// ".." components are dropped, never resolved.
			if res.Err != nil || !res.Verified || res.Path != filepath.Join(h.dir, "etc", "passwd") || res.Name != "etc/passwd" {
				t.Fatalf("result %+v: want a verified file etc/passwd inside the dir", res)
			}
			h.expect(jingle.ActionSessionTerminate)
		}, []string{"etc", "etc/passwd"}},
		{"nested name through a planted link to the outside", func(t *testing.T, h *hostileBed) {
			// Someone planted inbox/evil -> the dir's parent.
			if err := os.Symlink(h.root, filepath.Join(h.dir, "evil")); err != nil {
				t.Fatal(err)
			}
			h.started("s9", `evil/..\../x/pwn`, int64(len(payload)), sum[:])
			if err := h.data("s9", 0, enc64(payload)); err != nil {
				t.Fatal(err)
			}
			res := <-h.results
			if res.Err != nil || res.Path != filepath.Join(h.dir, "evil (1)", "x", "pwn") {
				t.Fatalf("result %+v: want the file under \"evil (1)/x\"", res)
			}
			h.expect(jingle.ActionSessionTerminate)
		}, []string{"evil", "evil (1)", "evil (1)/x", "evil (1)/x/pwn"}},
		{"1000 nested directories", func(t *testing.T, h *hostileBed) {
			h.started("s10", strings.Repeat("d/", 1000)+"deep", int64(len(payload)), sum[:])
			if err := h.data("s10", 0, enc64(payload)); err != nil {
				t.Fatal(err)
			}
			res := <-h.results
			if res.Err != nil || res.Name != strings.Repeat("d/", MaxDepth)+"deep" {
				t.Fatalf("result %+v: want %d levels", res, MaxDepth)
			}
			h.expect(jingle.ActionSessionTerminate)
		}, func() []string {
			var w []string
			for i := 1; i <= MaxDepth; i++ {
				w = append(w, strings.TrimSuffix(strings.Repeat("d/", i), "/"))
			}
			return append(w, strings.Repeat("d/", MaxDepth)+"deep")
		}()},
		{"size lie (more bytes than offered)", func(t *testing.T, h *hostileBed) {
			h.started("s2", "lie.bin", 4, nil)
			h.data("s2", 0, enc64(payload)) // 31 bytes for an offer of 4
			h.checksum("s2", sum[:])
			res := <-h.results
			// The extra bytes or the checksum of the whole 31 bytes
			// (which cannot match the 4 kept) may be noticed first.
			if !errors.Is(res.Err, ErrSizeMismatch) && !errors.Is(res.Err, ErrHashMismatch) {
				t.Fatalf("result error %v, want ErrSizeMismatch or ErrHashMismatch", res.Err)
			}
			if res.Path != "" {
				t.Fatalf("size lie committed %s", res.Path)
			}
			if r := h.expect(jingle.ActionSessionTerminate).Reason; r == nil || r.Condition != jingle.ReasonMediaError {
				t.Fatalf("terminate reason %+v, want media-error", r)
			}
		}, nil},
		{"wrong hash", func(t *testing.T, h *hostileBed) {
			bad := sha256.Sum256([]byte("something else"))
			h.started("s3", "bad.bin", int64(len(payload)), bad[:])
			h.data("s3", 0, enc64(payload))
			res := <-h.results
			if !errors.Is(res.Err, ErrHashMismatch) || res.Path != "" {
				t.Fatalf("result %+v, want ErrHashMismatch and no file", res)
			}
			if r := h.expect(jingle.ActionSessionTerminate).Reason; r == nil || r.Condition != jingle.ReasonMediaError {
				t.Fatalf("terminate reason %+v, want media-error", r)
			}
		}, nil},
		{"transport-info from a third JID", func(t *testing.T, h *hostileBed) {
			if err := h.initiate("s4", "x.bin", 10, nil); err != nil {
				t.Fatal(err)
			}
			h.expect(jingle.ActionSessionAccept)
			err := h.iq(h.third, `<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s4"><content creator="initiator" name="f">`+
				`<transport xmlns="urn:xmpp:jingle:transports:ibb:1" sid="ibb-s4"/></content></jingle>`)
			wantStanzaError(t, err, "item-not-found", "unknown-session")
			h.cancel("s4")
		}, nil},
		{"action for an unknown sid", func(t *testing.T, h *hostileBed) {
			err := h.iq(h.peer, `<jingle xmlns="urn:xmpp:jingle:1" action="session-info" sid="nope"/>`)
			wantStanzaError(t, err, "item-not-found", "unknown-session")
		}, nil},
		{"second session-initiate with the same sid", func(t *testing.T, h *hostileBed) {
			if err := h.initiate("s6", "x.bin", 10, nil); err != nil {
				t.Fatal(err)
			}
			wantStanzaError(t, h.initiate("s6", "y.bin", 10, nil), "unexpected-request", "out-of-order")
			h.cancel("s6")
		}, nil},
		{"garbage base64 in IBB", func(t *testing.T, h *hostileBed) {
			h.started("s7", "g.bin", 100, nil)
			wantStanzaError(t, h.data("s7", 0, "!!!not base64!!!"), "bad-request", "")
			res := <-h.results
			if res.Err == nil || res.Path != "" {
				t.Fatalf("result %+v, want a failure and no file", res)
			}
		}, nil},
		{"out-of-order IBB seq", func(t *testing.T, h *hostileBed) {
			h.started("s8", "o.bin", 100, nil)
			if err := h.data("s8", 0, enc64([]byte("abc"))); err != nil {
				t.Fatal(err)
			}
			wantStanzaError(t, h.data("s8", 5, enc64([]byte("def"))), "unexpected-request", "")
			res := <-h.results
			if res.Err == nil || res.Path != "" {
				t.Fatalf("result %+v, want a failure and no file", res)
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileBed(t)
			tc.run(t, h)
			outside, inside := h.files()
			if len(outside) != 0 {
				t.Errorf("written outside the download dir: %v", outside)
			}
			// Only the expected final files; temporary files are gone
			// (failed transfers are removed without KeepPartial).
			deadline := time.Now().Add(5 * time.Second)
			for strings.Join(inside, ",") != strings.Join(tc.inside, ",") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond) // the abort runs after the terminate
				_, inside = h.files()
			}
			if strings.Join(inside, ",") != strings.Join(tc.inside, ",") {
				t.Errorf("download dir holds %v, want %v", inside, tc.inside)
			}
		})
	}
}
