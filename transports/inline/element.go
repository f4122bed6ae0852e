package inline

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"

	"github.com/xjingle/xjingle/jingle"
)

// Namespaces and limits.
const (
	// NS is the transport's namespace: xjingle's own, not an XSF one
	// (see the package doc).
	NS = "urn:xjingle:jingle:transports:bob:0"
	// NSBoB is the Bits of Binary namespace (XEP-0231).
	NSBoB = "urn:xmpp:bob"
	// DefaultMaxSize is the default max-size: the largest stream offered
	// or accepted.
	DefaultMaxSize = 8 << 10
	// MaxStanzaSize is the largest max-size worth configuring: servers
	// limit stanza sizes (Prosody's default c2s limit is 256 KiB; base64
	// adds a third).
	MaxStanzaSize = 64 << 10

	cidSuffix = "@bob.xmpp.org"
	cidPrefix = "sha1+"
)

// transportElem is <transport xmlns=NS max-size='N'>[<data/>...]</transport>.
type transportElem struct {
	XMLName xml.Name   `xml:"urn:xjingle:jingle:transports:bob:0 transport"`
	MaxSize string     `xml:"max-size,attr,omitempty"`
	Data    []dataElem `xml:"urn:xmpp:bob data"`
}

// dataElem is XEP-0231's <data/> (§2.5).
type dataElem struct {
	XMLName xml.Name `xml:"urn:xmpp:bob data"`
	CID     string   `xml:"cid,attr"`
	Type    string   `xml:"type,attr,omitempty"`
	MaxAge  string   `xml:"max-age,attr,omitempty"`
	Text    string   `xml:",chardata"`
}

// CID is the XEP-0231 §2.5 content id of b: sha1+HEX@bob.xmpp.org.
func CID(b []byte) string {
	sum := sha1.Sum(b)
	return cidPrefix + hex.EncodeToString(sum[:]) + cidSuffix
}

// offerElement is an offer or answer: <transport max-size/>.
func offerElement(max int64) jingle.Element {
	el, err := jingle.NewElement(transportElem{MaxSize: strconv.FormatInt(max, 10)})
	if err != nil {
		panic(err) // static shape
	}
	return el
}

// DataElement is the transport-info payload carrying b:
// <transport xmlns=NS><data xmlns='urn:xmpp:bob' .../></transport>.
func DataElement(b []byte) jingle.Element {
	el, err := jingle.NewElement(transportElem{Data: []dataElem{{
		CID:    CID(b),
		Type:   "application/octet-stream",
		MaxAge: "0", // XEP-0231 §2.4: not to be cached
		Text:   base64.StdEncoding.EncodeToString(b),
	}}})
	if err != nil {
		panic(err) // static shape
	}
	return el
}

// ParseMaxSize reads max-size from an offer or answer: a positive integer.
func ParseMaxSize(el jingle.Element) (int64, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "transport" {
		return 0, fmt.Errorf("%w: not an inline transport: <%s xmlns=%q>", ErrBadData, el.XMLName.Local, el.XMLName.Space)
	}
	v := el.Attr("max-size")
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: max-size %q is not a positive integer", ErrBadData, v)
	}
	return n, nil
}

// ParseData reads the data of a transport-info: el must be our <transport/>
// with exactly one <data/> whose base64 decodes to at most max bytes that
// match its cid. Errors wrap ErrBadData, ErrTooLarge or ErrCIDMismatch.
func ParseData(el jingle.Element, max int64) ([]byte, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "transport" {
		return nil, fmt.Errorf("%w: not an inline transport: <%s xmlns=%q>", ErrBadData, el.XMLName.Local, el.XMLName.Space)
	}
	// Cheap bound before decoding: the base64 of max bytes, plus room for
	// whitespace and the element's markup.
	if lim := int64(base64.StdEncoding.EncodedLen(int(min(max, 1<<30)))); int64(len(el.Inner)) > 2*lim+4096 {
		return nil, fmt.Errorf("%w: %d bytes of XML for max-size %d", ErrTooLarge, len(el.Inner), max)
	}
	var t transportElem
	if err := el.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadData, err)
	}
	if len(t.Data) != 1 {
		return nil, fmt.Errorf("%w: %d <data/> elements, want exactly one", ErrBadData, len(t.Data))
	}
	d := t.Data[0]
	hexSum, ok := strings.CutPrefix(d.CID, cidPrefix)
	if ok {
		hexSum, ok = strings.CutSuffix(hexSum, cidSuffix)
	}
	if !ok || len(hexSum) != 2*sha1.Size {
		return nil, fmt.Errorf("%w: cid %q is not sha1+HEX%s", ErrBadData, d.CID, cidSuffix)
	}
	want, err := hex.DecodeString(hexSum)
	if err != nil {
		return nil, fmt.Errorf("%w: cid %q: %w", ErrBadData, d.CID, err)
	}
	// XEP-0231 §2.5 forbids whitespace in the base64, but its own
	// examples wrap lines: tolerate XML whitespace, nothing else.
	text := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, d.Text)
	if int64(base64.StdEncoding.DecodedLen(len(text))) > max+2 {
		return nil, fmt.Errorf("%w: about %d bytes, max-size %d", ErrTooLarge, base64.StdEncoding.DecodedLen(len(text)), max)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrBadData, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %d bytes, max-size %d", ErrTooLarge, len(b), max)
	}
	if sum := sha1.Sum(b); string(sum[:]) != string(want) {
		return nil, fmt.Errorf("%w: cid %s, data hashes to %x", ErrCIDMismatch, d.CID, sum)
	}
	return b, nil
}
