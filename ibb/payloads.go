package ibb

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// Namespaces.
const (
	// NS is the In-Band Bytestreams namespace (XEP-0047 §8.1).
	NS = "http://jabber.org/protocol/ibb"
	// NSJingle is the Jingle IBB transport namespace (XEP-0261 §7.1).
	NSJingle = "urn:xmpp:jingle:transports:ibb:1"
)

// Block sizes.
const (
	// MaxBlockSize is the largest block size XEP-0047 §2.1 allows.
	MaxBlockSize = 65535
	// DefaultBlockSize is the block size offered and opened by default,
	// and the largest one accepted from peers. It is the largest value the
	// XEP-0261 §8 schema allows (xs:short), so that strict parsers accept
	// our offer; a base64 block of it is ~43 KiB, well below the stanza size
	// limits of common servers (Prosody, ejabberd: 256 KiB). Conversations
	// uses 8192; WithBlockSize(65535) gives the best throughput.
	DefaultBlockSize = 32767
	// maxSIDLen bounds the sid attribute a peer may send.
	maxSIDLen = 256
)

var (
	nameOpen  = xml.Name{Space: NS, Local: "open"}
	nameClose = xml.Name{Space: NS, Local: "close"}
	nameData  = xml.Name{Space: NS, Local: "data"}
)

// errMalformed is wrapped by parse errors.
var errMalformed = errors.New("ibb: malformed element")

// openElem is <open/> (XEP-0047 §2.1).
type openElem struct {
	SID       string
	BlockSize int
	Stanza    string // "iq" (default) or "message"
}

// dataElem is <data/> (XEP-0047 §2.2). Text is the raw character data of the
// element (base64, possibly with whitespace); it aliases the parsed payload.
type dataElem struct {
	SID  string
	Seq  uint16
	Text []byte
}

// startElement decodes the first start element of raw and returns it with the
// decoder positioned just after it.
func startElement(raw []byte) (*xml.Decoder, xml.StartElement, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, xml.StartElement{}, fmt.Errorf("%w: %w", errMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return d, t, nil
		case xml.CharData, xml.Comment, xml.ProcInst, xml.Directive:
			continue
		default:
			return nil, xml.StartElement{}, fmt.Errorf("%w: unexpected %T", errMalformed, tok)
		}
	}
}

func attr(start xml.StartElement, local string) (string, bool) {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// validSID reports whether sid is acceptable: non-empty, bounded, and made of
// XML name characters (NMTOKEN, XEP-0047 §2.1), which UUIDs and the sids of
// common clients satisfy.
func validSID(sid string) bool {
	if sid == "" || len(sid) > maxSIDLen {
		return false
	}
	for _, r := range sid {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.' || r == ':':
		case r >= 0x80: // non-ASCII name characters; not worth the full table
		default:
			return false
		}
	}
	return true
}

func parseBlockSize(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxBlockSize {
		return 0, fmt.Errorf("%w: block-size %q", errMalformed, s)
	}
	return n, nil
}

// parseOpen parses <open xmlns='http://jabber.org/protocol/ibb'/>.
func parseOpen(raw []byte) (openElem, error) {
	_, start, err := startElement(raw)
	if err != nil {
		return openElem{}, err
	}
	if start.Name != nameOpen {
		return openElem{}, fmt.Errorf("%w: got <%s xmlns=%q>, want <open/>", errMalformed, start.Name.Local, start.Name.Space)
	}
	var o openElem
	o.SID, _ = attr(start, "sid")
	if !validSID(o.SID) {
		return openElem{}, fmt.Errorf("%w: sid %q", errMalformed, o.SID)
	}
	bs, _ := attr(start, "block-size")
	if o.BlockSize, err = parseBlockSize(bs); err != nil {
		return openElem{}, err
	}
	o.Stanza, _ = attr(start, "stanza")
	switch o.Stanza {
	case "":
		o.Stanza = "iq"
	case "iq", "message":
	default:
		return openElem{}, fmt.Errorf("%w: stanza %q", errMalformed, o.Stanza)
	}
	return o, nil
}

// parseClose parses <close/> and returns its sid.
func parseClose(raw []byte) (string, error) {
	_, start, err := startElement(raw)
	if err != nil {
		return "", err
	}
	if start.Name != nameClose {
		return "", fmt.Errorf("%w: want <close/>", errMalformed)
	}
	sid, _ := attr(start, "sid")
	if !validSID(sid) {
		return "", fmt.Errorf("%w: sid %q", errMalformed, sid)
	}
	return sid, nil
}

// parseData parses <data/>. The fast path takes the character data straight
// from raw (no copy) when it holds no markup or entity; otherwise the XML
// decoder collects it.
func parseData(raw []byte) (dataElem, error) {
	d, start, err := startElement(raw)
	if err != nil {
		return dataElem{}, err
	}
	if start.Name != nameData {
		return dataElem{}, fmt.Errorf("%w: want <data/>", errMalformed)
	}
	var e dataElem
	e.SID, _ = attr(start, "sid")
	if !validSID(e.SID) {
		return dataElem{}, fmt.Errorf("%w: sid %q", errMalformed, e.SID)
	}
	seq, _ := attr(start, "seq")
	n, err := strconv.ParseUint(seq, 10, 16)
	if err != nil {
		return dataElem{}, fmt.Errorf("%w: seq %q", errMalformed, seq)
	}
	e.Seq = uint16(n)

	off := d.InputOffset()
	if off < 0 || off > int64(len(raw)) {
		return dataElem{}, fmt.Errorf("%w: offset", errMalformed)
	}
	rest := raw[off:]
	if bytes.HasSuffix(bytes.TrimRight(raw[:off], " \t\r\n"), []byte("/>")) {
		// <data .../>: an empty block.
		return e, nil
	}
	if end := bytes.LastIndex(rest, []byte("</")); end >= 0 && bytes.IndexAny(rest[:end], "<&") < 0 {
		e.Text = rest[:end]
		return e, nil
	}
	// Slow path: CDATA sections, entities, or malformed input.
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return dataElem{}, fmt.Errorf("%w: %w", errMalformed, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			e.Text = text
			return e, nil
		case xml.StartElement:
			return dataElem{}, fmt.Errorf("%w: child element in <data/>", errMalformed)
		}
	}
}

// errBadBase64 and errTooLarge classify decodeBlock failures.
var (
	errBadBase64 = errors.New("ibb: invalid base64")
	errTooLarge  = errors.New("ibb: block larger than block-size")
)

// bufPool holds scratch buffers for base64 text and decoded blocks.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, base64.StdEncoding.EncodedLen(MaxBlockSize)+64); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { *b = (*b)[:0]; bufPool.Put(b) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// decodeBlock decodes the base64 text of a <data/> element into a pooled
// buffer (the caller puts it back). XML whitespace (line breaks, as in the
// examples of XEP-0047 §2.2) is skipped; anything else outside the base64
// alphabet, misplaced padding and non-canonical trailing bits are rejected
// (XEP-0047 §6, RFC 4648 §4). A block that decodes to more than blockSize
// bytes is errTooLarge.
func decodeBlock(text []byte, blockSize int) (*[]byte, error) {
	maxEnc := base64.StdEncoding.EncodedLen(blockSize)
	// Allow generous whitespace, but bound the work a peer can cause.
	if len(text) > 2*maxEnc+1024 {
		return nil, errTooLarge
	}
	src := text
	var scratch *[]byte
	if bytes.IndexAny(text, " \t\r\n") >= 0 {
		scratch = getBuf()
		defer putBuf(scratch)
		s := (*scratch)[:0]
		for _, c := range text {
			if !isSpace(c) {
				s = append(s, c)
			}
		}
		*scratch = s
		src = s
	}
	if len(src) > maxEnc {
		return nil, errTooLarge
	}
	out := getBuf()
	need := base64.StdEncoding.DecodedLen(len(src))
	if cap(*out) < need {
		*out = make([]byte, 0, need)
	}
	n, err := base64.StdEncoding.Strict().Decode((*out)[:need], src)
	if err != nil {
		putBuf(out)
		return nil, fmt.Errorf("%w: %w", errBadBase64, err)
	}
	if n > blockSize {
		putBuf(out)
		return nil, errTooLarge
	}
	*out = (*out)[:n]
	return out, nil
}

// attrEscape escapes s for a single-quoted XML attribute.
func attrEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // also escapes ' and "
	return b.String()
}

func marshalOpen(o openElem) []byte {
	stanza := o.Stanza
	if stanza == "" {
		stanza = "iq"
	}
	return []byte(fmt.Sprintf("<open xmlns='%s' block-size='%d' sid='%s' stanza='%s'/>", NS, o.BlockSize, attrEscape(o.SID), stanza))
}

func marshalClose(sid string) []byte {
	return []byte(fmt.Sprintf("<close xmlns='%s' sid='%s'/>", NS, attrEscape(sid)))
}

// appendData appends a <data/> element carrying block to dst.
func appendData(dst []byte, sid string, seq uint16, block []byte) []byte {
	dst = append(dst, "<data xmlns='"+NS+"' seq='"...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, "' sid='"...)
	dst = append(dst, sid...) // already escaped by the caller
	dst = append(dst, "'>"...)
	dst = base64.StdEncoding.AppendEncode(dst, block)
	return append(dst, "</data>"...)
}
