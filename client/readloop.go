package client

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// maxStanza bounds one incoming stanza (the server enforces its own limit;
// this is ours: IBB blocks of 64 KiB are ~88 KiB of base64).
const maxStanza = 1 << 20

// stanza is one incoming stanza, parsed just enough to route it.
type stanza struct {
	kind     string // iq, message, presence
	id, typ  string
	from, to jid.JID
	children []child
}

// child is one child element of a stanza, kept as raw XML.
type child struct {
	name  xml.Name
	attrs []xml.Attr
	raw   []byte
}

// attr returns the value of an attribute in no namespace.
func (c child) attr(local string) string {
	for _, a := range c.attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// readLoop reads stanzas until the stream ends and routes them. It owns the
// session's input.
func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	r := c.sess.TokenReader()
	defer r.Close()
	d := xml.NewTokenDecoder(r)
	for {
		tok, err := d.Token()
		if err != nil {
			c.endRead(err)
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space == NSStreams && t.Name.Local == "error" {
				var se struct {
					Inner []byte `xml:",innerxml"`
				}
				_ = d.DecodeElement(&se, &t)
				c.endRead(fmt.Errorf("client: stream error: %s", streamErrorText(se.Inner)))
				return
			}
			st, err := readStanza(d, t)
			if err != nil {
				c.endRead(fmt.Errorf("client: read stanza: %w", err))
				return
			}
			if st != nil {
				c.route(st)
			}
		case xml.EndElement:
			// </stream:stream>
			c.endRead(nil)
			return
		}
	}
}

func (c *Client) endRead(err error) {
	c.mu.Lock()
	closed := c.closed
	// From now on SendIQAsync fails at once: an IQ registered after
	// failPending below would wait for an answer that cannot come.
	c.ended = true
	c.mu.Unlock()
	if closed || errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		c.log.Warn("connection lost", "err", err)
	}
	c.readErr = err
	// Answers will not come any more. done callbacks must not block
	// (jingle.AsyncIQSender), so this runs here, on the read loop, which
	// Close waits for.
	c.failPending(ErrClosed)
}

func streamErrorText(inner []byte) string {
	d := xml.NewDecoder(bytes.NewReader(inner))
	for {
		tok, err := d.Token()
		if err != nil {
			return "undefined"
		}
		if s, ok := tok.(xml.StartElement); ok {
			return s.Name.Local
		}
	}
}

// readStanza reads the rest of the element started by start and splits it
// into attributes and child elements (kept raw). Unknown top-level elements
// are skipped (nil, nil).
func readStanza(d *xml.Decoder, start xml.StartElement) (*stanza, error) {
	switch start.Name.Local {
	case "iq", "message", "presence":
	default:
		return nil, d.Skip()
	}
	st := &stanza{kind: start.Name.Local}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "id":
			st.id = a.Value
		case "type":
			st.typ = a.Value
		case "from":
			st.from, _ = jid.Parse(a.Value)
		case "to":
			st.to, _ = jid.Parse(a.Value)
		}
	}
	size := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			// The session hands us tokens, not bytes (so ",innerxml"
			// would be empty): re-encode the child, then parse it.
			raw, err := encodeElement(d, t, maxStanza-size)
			if err != nil {
				return nil, err
			}
			size += len(raw)
			st.children = append(st.children, child{name: t.Name, attrs: t.Attr, raw: raw})
		case xml.EndElement:
			return st, nil
		}
	}
}

// route hands a stanza to whoever waits for it. It never blocks on a
// handler's work: handlers are non-blocking by contract.
func (c *Client) route(st *stanza) {
	switch st.kind {
	case "iq":
		c.routeIQ(st)
	case "message":
		c.routeMessage(st)
	case "presence":
		c.routePresence(st)
	}
}

func (c *Client) routeIQ(st *stanza) {
	switch st.typ {
	case "result", "error":
		c.mu.Lock()
		p := c.pending[st.id]
		if p != nil && !c.answerFrom(p.to, st.from) {
			p = nil // RFC 6120 §8.1.2.1: only the addressee answers
		}
		if p != nil {
			delete(c.pending, st.id)
		}
		c.mu.Unlock()
		if p == nil {
			return // late, unknown or spoofed answer
		}
		if st.typ == "error" {
			p.done(nil, iqError(st.children))
			return
		}
		var payload []byte
		if len(st.children) > 0 {
			payload = st.children[0].raw
		}
		p.done(payload, nil)
	case "get", "set":
		if len(st.children) != 1 {
			// RFC 6120 §8.2.3: exactly one child.
			c.replyIQ(st, nil, jingle.ErrBadRequest.WithText("an IQ get/set has exactly one child"))
			return
		}
		el := st.children[0]
		c.mu.Lock()
		h := c.iqs[el.name]
		c.mu.Unlock()
		if h == nil {
			// RFC 6120 §8.4.
			c.replyIQ(st, nil, jingle.ErrServiceUnavailable)
			return
		}
		from := st.from
		if from.Equal(jid.JID{}) {
			from = c.local.Bare() // stanzas without from come from our own account (RFC 6120 §8.1.2.1)
		}
		iq := &jingle.IQ{ID: st.id, Type: st.typ, From: from, To: st.to, Payload: el.raw}
		var once sync.Once
		reply := func(result []byte, err error) error {
			werr := fmt.Errorf("client: IQ %s answered twice", st.id)
			once.Do(func() { werr = c.replyIQ(st, result, err) })
			return werr
		}
		h(iq, reply)
	default:
		// RFC 6120 §8.2.3: an IQ of unknown type is bad-request.
		if st.id != "" {
			c.replyIQ(st, nil, jingle.ErrBadRequest)
		}
	}
}

// iqError parses the <error/> child of an error IQ.
func iqError(children []child) error {
	for _, ch := range children {
		if ch.name.Local == "error" {
			se, err := jingle.ParseStanzaError(ch.raw)
			if err != nil {
				return jingle.ErrInternalServerError.WithText("unparsable error: %v", err)
			}
			return se
		}
	}
	return jingle.NewStanzaError(jingle.ErrorTypeCancel, "undefined-condition", "error IQ without <error/>")
}

// replyIQ writes the answer to an IQ request. It may be called from any
// goroutine.
func (c *Client) replyIQ(st *stanza, result []byte, err error) error {
	var b bytes.Buffer
	typ := "result"
	if err != nil {
		typ = "error"
	}
	b.Write(stanzaStart("iq", st.id, typ, st.from))
	if err != nil {
		se := jingle.AsStanzaError(err)
		if out, merr := xml.Marshal(se); merr == nil {
			b.Write(out)
		}
	} else {
		b.Write(result)
	}
	b.WriteString("</iq>")
	ctx, cancel := contextWithTimeout(c.cfg.IQTimeout)
	defer cancel()
	if werr := c.write(ctx, b.Bytes()); werr != nil {
		return fmt.Errorf("client: answer IQ %s: %w", st.id, werr)
	}
	return nil
}

func (c *Client) routeMessage(st *stanza) {
	if st.typ == "error" {
		return
	}
	from := st.from
	for _, el := range st.children {
		c.mu.Lock()
		h := c.msgs[el.name]
		c.mu.Unlock()
		if h != nil {
			h(&jingle.Message{ID: st.id, Type: st.typ, From: from, To: st.to, Payload: el.raw})
		}
	}
}

func (c *Client) routePresence(st *stanza) {
	if st.from.Equal(jid.JID{}) {
		return
	}
	switch st.typ {
	case "", "unavailable":
	default:
		return // subscription management and errors are not ours
	}
	p := resourcePresence{jid: st.from, available: st.typ == ""}
	for _, ch := range st.children {
		switch {
		case ch.name.Local == "priority":
			var v struct {
				V string `xml:",chardata"`
			}
			if xml.Unmarshal(ch.raw, &v) == nil {
				if n, err := strconv.Atoi(strings.TrimSpace(v.V)); err == nil && n >= -128 && n <= 127 {
					p.priority = n
				}
			}
		case ch.name.Space == NSCaps && ch.name.Local == "c":
			p.capsNode, p.capsVer, p.capsHash = ch.attr("node"), ch.attr("ver"), ch.attr("hash")
		}
	}
	c.pres.update(p)
}

// answerFrom reports whether an answer from "from" may answer an IQ sent to
// "to". An IQ to our own bare JID (or with no to) is answered by our server
// on its behalf: without from, or from our bare JID or our domain.
func (c *Client) answerFrom(to, from jid.JID) bool {
	if from.Equal(to) {
		return true
	}
	empty := jid.JID{}
	own := to.Equal(empty) || to.Equal(c.local.Bare())
	if own && (from.Equal(empty) || from.Equal(c.local.Bare()) || from.Equal(c.local.Domain())) {
		return true
	}
	// Some servers answer IQs to the domain without a from.
	return to.Equal(c.local.Domain()) && from.Equal(empty)
}

// encodeElement copies the element started by start from d into raw XML.
// Namespace declarations are dropped from the attributes: the encoder writes
// them from the element and attribute names. It fails beyond limit bytes.
func encodeElement(d *xml.Decoder, start xml.StartElement, limit int) ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	depth := 0
	tok := xml.Token(start)
	for {
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			attrs := make([]xml.Attr, 0, len(t.Attr)+1)
			if t.Name.Space == "" {
				// No namespace (xmlns="" in the input, or none
				// declared): say so, else the element would be
				// read in its parent's namespace, or in
				// jabber:client once the raw XML is embedded in a
				// stanza.
				attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "xmlns"}})
			}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				attrs = append(attrs, a)
			}
			t.Attr = attrs
			tok = t
		case xml.EndElement:
			depth--
		case xml.ProcInst, xml.Directive:
			tok = nil // not allowed in stanzas; drop
		}
		if tok != nil {
			if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
				return nil, err
			}
		}
		if depth == 0 {
			break
		}
		if buf.Len() > limit {
			return nil, fmt.Errorf("stanza larger than %d bytes", maxStanza)
		}
		var err error
		if tok, err = d.Token(); err != nil {
			return nil, err
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
