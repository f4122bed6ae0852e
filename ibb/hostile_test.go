package ibb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

func dataXML(sid string, seq int, b64 string) []byte {
	return fmt.Appendf(nil, "<data xmlns='%s' seq='%d' sid='%s'>%s</data>", NS, seq, sid, b64)
}

func wantCondition(t *testing.T, err error, typ, cond string) {
	t.Helper()
	var se *jingle.StanzaError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want stanza error %s", err, cond)
	}
	if se.Condition != cond || se.Type != typ {
		t.Fatalf("got %s/%s (%v), want %s/%s", se.Type, se.Condition, se, typ, cond)
	}
}

func TestHostile(t *testing.T) {
	const block = 16
	tests := []struct {
		name  string
		from  string // sender's JID; "" is alice, the stream's peer
		iqs   [][]byte
		typ   string // of the last answer
		cond  string
		fails bool // the stream must end
	}{
		{name: "garbage base64", iqs: [][]byte{dataXML("h", 0, "!!!notbase64!!!")}, typ: "cancel", cond: "bad-request", fails: true},
		{name: "padding inside", iqs: [][]byte{dataXML("h", 0, "QQ==QUFB")}, typ: "cancel", cond: "bad-request", fails: true},
		{name: "non-canonical bits", iqs: [][]byte{dataXML("h", 0, "QR==")}, typ: "cancel", cond: "bad-request", fails: true},
		{name: "missing padding", iqs: [][]byte{dataXML("h", 0, "QUFBQQ")}, typ: "cancel", cond: "bad-request", fails: true},
		{name: "out of order seq", iqs: [][]byte{dataXML("h", 1, "QUFB")}, typ: "cancel", cond: "unexpected-request", fails: true},
		{name: "duplicate seq", iqs: [][]byte{dataXML("h", 0, "QUFB"), dataXML("h", 0, "QUFB")}, typ: "cancel", cond: "unexpected-request", fails: true},
		// 17 bytes with block-size 16.
		{name: "oversized block", iqs: [][]byte{dataXML("h", 0, "QUFBQUFBQUFBQUFBQUFBQUFB")}, typ: "modify", cond: "resource-constraint", fails: true},
		{name: "huge block", iqs: [][]byte{dataXML("h", 0, string(make([]byte, 0))+repeat("QUFB", 100000))}, typ: "modify", cond: "resource-constraint", fails: true},
		{name: "unknown sid", iqs: [][]byte{dataXML("nope", 0, "QUFB")}, typ: "cancel", cond: "item-not-found"},
		{name: "third JID", from: "mallory@example.test/m", iqs: [][]byte{dataXML("h", 0, "QUFB")}, typ: "cancel", cond: "item-not-found"},
		{name: "other resource of the peer", from: "alice@example.test/other", iqs: [][]byte{dataXML("h", 0, "QUFB")}, typ: "cancel", cond: "item-not-found"},
		{name: "no seq", iqs: [][]byte{fmt.Appendf(nil, "<data xmlns='%s' sid='h'>QUFB</data>", NS)}, typ: "cancel", cond: "bad-request"},
		{name: "seq out of range", iqs: [][]byte{dataXML("h", 65536, "QUFB")}, typ: "cancel", cond: "bad-request"},
		{name: "close unknown sid", iqs: [][]byte{fmt.Appendf(nil, "<close xmlns='%s' sid='nope'/>", NS)}, typ: "cancel", cond: "item-not-found"},
		{name: "open unexpected", iqs: [][]byte{fmt.Appendf(nil, "<open xmlns='%s' sid='other' block-size='16'/>", NS)}, typ: "cancel", cond: "not-acceptable"},
		{name: "open existing sid", iqs: [][]byte{fmt.Appendf(nil, "<open xmlns='%s' sid='h' block-size='16'/>", NS)}, typ: "cancel", cond: "not-acceptable"},
		{name: "open bad block-size", iqs: [][]byte{fmt.Appendf(nil, "<open xmlns='%s' sid='h2' block-size='70000'/>", NS)}, typ: "cancel", cond: "bad-request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, WithBlockSize(block), WithCloseTimeout(time.Second))
			defer e.close()
			a, b := e.open(t, "h", 0)
			defer a.Close()
			defer b.Close()
			sender := e.sa
			if tc.from != "" {
				sender = e.net.Add(tc.from)
				defer sender.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			for i, iq := range tc.iqs {
				_, err = sender.SendIQ(ctx, e.sb.LocalJID(), "set", iq)
				if i < len(tc.iqs)-1 && err != nil {
					t.Fatalf("IQ %d: %v", i, err)
				}
			}
			wantCondition(t, err, tc.typ, tc.cond)

			if tc.fails {
				// Buffered valid data first, then the failure.
				if len(tc.iqs) > 1 {
					buf := make([]byte, 3)
					if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "AAA" {
						t.Fatalf("buffered data: %q, %v", buf, err)
					}
				}
				if _, err := b.Read(make([]byte, 10)); !errors.Is(err, ErrProtocol) {
					t.Fatalf("Read after violation: %v, want ErrProtocol", err)
				}
				// We closed the stream (XEP-0047 §2.2): the peer sees EOF.
				if _, err := a.Read(make([]byte, 10)); err != io.EOF {
					t.Fatalf("peer Read: %v, want io.EOF", err)
				}
				return
			}
			// The stream is unaffected.
			if _, err := a.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("after hostile IQ: %q, %v", buf, err)
			}
		})
	}
}

func repeat(s string, n int) string {
	b := make([]byte, 0, len(s)*n)
	for range n {
		b = append(b, s...)
	}
	return string(b)
}

// A spoofed sender (InjectIQ, answers dropped) cannot inject data.
func TestInjectedData(t *testing.T) {
	e := newEnv(t)
	defer e.close()
	a, b := e.open(t, "inj", 0)
	defer a.Close()
	defer b.Close()
	if err := e.net.InjectIQ(jid.MustParse("eve@evil.test/x"), e.sb.LocalJID(), "x1", "set", dataXML("inj", 0, "RVZJTA==")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("good")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "good" {
		t.Fatalf("got %q, %v", buf, err)
	}
}

// A peer that ignores delayed acks overruns the bounded buffer: the stream
// fails with resource-constraint instead of growing.
func TestBufferOverrun(t *testing.T) {
	e := newEnv(t, WithBlockSize(4), WithReadBuffer(8))
	defer e.close()
	a, b := e.open(t, "ov", 0)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// hard limit: 8 + MaxWindow*4 bytes; each block is 3 bytes.
	results := make(chan error, 64)
	var last error
	for seq := 0; seq < 40; seq++ {
		err := e.sa.SendIQAsync(ctx, e.sb.LocalJID(), "set", dataXML("ov", seq, "QUFB"), func(_ []byte, err error) { results <- err })
		if err != nil {
			t.Fatal(err)
		}
	}
	sawConstraint := false
	for range 40 {
		last = <-results
		var se *jingle.StanzaError
		if errors.As(last, &se) && se.Condition == "resource-constraint" && se.Type == "wait" {
			sawConstraint = true
		}
	}
	if !sawConstraint {
		t.Fatal("no resource-constraint for a peer overrunning the buffer")
	}
	b.mu.Lock()
	n := len(b.rbuf) - b.roff
	b.mu.Unlock()
	if n > 8+MaxWindow*4 {
		t.Fatalf("buffered %d bytes beyond the bound", n)
	}
}
