package ibb

import (
	"bytes"
	"testing"

	"github.com/xjingle/xjingle/jingle"
)

func FuzzParseData(f *testing.F) {
	// XEP-0047 Example 6 (whitespace inside), Dino/Conversations shapes,
	// and edge cases.
	f.Add([]byte(`<data xmlns='http://jabber.org/protocol/ibb' seq='0' sid='i781hf64'>
    qANQR1DBwU4DX7jmYZnncmUQB/9KuKBddzQH+tZ1ZywKK0yHKnq57kWq+RFtQdCJ
    WpdWpR0uQsuJe7+vh3NWn59/gTc5MDlX8dS9p0ovStmNcyLhxVgmqS8ZKhsblVeu
  </data>`), 4096)
	f.Add([]byte(`<data xmlns="http://jabber.org/protocol/ibb" sid="4db275f3-6d8d-4c21-8f2b-a7b9cfa1341b" seq="1">QUFB</data>`), 8192)
	f.Add([]byte(`<ibb:data xmlns:ibb="http://jabber.org/protocol/ibb" seq="65535" sid="s"><![CDATA[QUFB]]></ibb:data>`), 3)
	f.Add([]byte(`<data xmlns='http://jabber.org/protocol/ibb' seq='2' sid='s'/>`), 16)
	f.Add([]byte(`<data xmlns='http://jabber.org/protocol/ibb' seq='2' sid='s'>QU&#70;B</data>`), 16)
	f.Add([]byte(`<data xmlns='http://jabber.org/protocol/ibb' seq='-1' sid='s'>=AAA</data>`), 16)
	f.Fuzz(func(t *testing.T, raw []byte, blockSize int) {
		if blockSize < 1 || blockSize > MaxBlockSize {
			blockSize = 4096
		}
		e, err := parseData(raw)
		if err != nil {
			return
		}
		block, err := decodeBlock(e.Text, blockSize)
		if err != nil {
			return
		}
		defer putBuf(block)
		if len(*block) > blockSize {
			t.Fatalf("decoded %d bytes, block size %d", len(*block), blockSize)
		}
		// Round trip.
		raw2 := appendData(nil, attrEscape(e.SID), e.Seq, *block)
		e2, err := parseData(raw2)
		if err != nil {
			t.Fatalf("reparse %s: %v", raw2, err)
		}
		block2, err := decodeBlock(e2.Text, blockSize)
		if err != nil {
			t.Fatalf("redecode: %v", err)
		}
		defer putBuf(block2)
		if e2.SID != e.SID || e2.Seq != e.Seq || !bytes.Equal(*block, *block2) {
			t.Fatalf("round trip: %+v %x != %+v %x", e, *block, e2, *block2)
		}
	})
}

func FuzzParseOpen(f *testing.F) {
	f.Add([]byte(`<open xmlns='http://jabber.org/protocol/ibb' block-size='4096' sid='i781hf64' stanza='iq'/>`))
	f.Add([]byte(`<open xmlns="http://jabber.org/protocol/ibb" block-size="8192" sid="4db275f3-6d8d-4c21-8f2b-a7b9cfa1341b" />`))
	f.Add([]byte(`<open xmlns='http://jabber.org/protocol/ibb' block-size='65536' sid='x' stanza='message'/>`))
	f.Add([]byte(`<close xmlns='http://jabber.org/protocol/ibb' sid='i781hf64'/>`))
	f.Add([]byte(`<transport xmlns='urn:xmpp:jingle:transports:ibb:1' block-size='4096' sid='ch3d9s71'/>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if o, err := parseOpen(raw); err == nil {
			o2, err := parseOpen(marshalOpen(o))
			if err != nil || o2 != o {
				t.Fatalf("open round trip: %+v -> %+v, %v", o, o2, err)
			}
		}
		if sid, err := parseClose(raw); err == nil {
			sid2, err := parseClose(marshalClose(sid))
			if err != nil || sid2 != sid {
				t.Fatalf("close round trip: %q -> %q, %v", sid, sid2, err)
			}
		}
		if el, err := jingle.ParseElement(raw); err == nil {
			sid, bs, err := parseTransport(el)
			if err == nil && (bs < 0 || bs > MaxBlockSize || (sid != "" && !validSID(sid))) {
				t.Fatalf("transport: sid %q block-size %d", sid, bs)
			}
		}
	})
}
