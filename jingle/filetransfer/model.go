package filetransfer

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/xjingle/xjingle/jingle"
)

// Namespaces.
const (
	// NS is the XEP-0234 namespace (§14.1).
	NS = "urn:xmpp:jingle:apps:file-transfer:5"
	// NSErrors is the namespace of the application-specific reasons of
	// XEP-0234 §9 (file-not-available, file-too-large).
	NSErrors = "urn:xmpp:jingle:apps:file-transfer:errors:0"
	// NSHashes is the XEP-0300 namespace.
	NSHashes = "urn:xmpp:hashes:2"
	// nsHashesV1 is the older XEP-0300 namespace, still read.
	nsHashesV1 = "urn:xmpp:hashes:1"
)

// Limits on what a peer may put in one element; larger elements are
// ErrMalformed. The Signaller bounds the stanza size itself.
const (
	maxFileChildren = 64       // children of <file/>
	maxHashes       = 16       // <hash/> and <hash-used/> of one <file/> or <range/>
	maxText         = 64 << 10 // bytes of one text child (name, desc, ...)
)

// Range is the <range/> element (XEP-0234 §5): a ranged transfer starts at
// Offset and carries Length bytes (0: to the end of the file). Hashes, in a
// checksum, are those of the range's data (§8.2, Example 15).
type Range struct {
	Offset int64
	Length int64
	Hashes []Hash
}

// File is the <file/> element (XEP-0234 §5), of a description (offer or
// request) or of a checksum.
type File struct {
	// Date is the last modification time (XEP-0082 DateTime); zero when
	// absent. An unparsable <date/> is kept in Extra.
	Date time.Time
	// Desc is the first <desc/>; further ones (other xml:lang) are in Extra.
	Desc string
	// MediaType is <media-type/> (or <mediaType/>, which Conversations
	// sends); empty means application/octet-stream.
	MediaType string
	// Name is the file name as the peer sent it: never use it as a path
	// (see SanitizeName).
	Name string
	// Size is the length in bytes; meaningful only when HasSize.
	Size    int64
	HasSize bool
	// Range is non-nil when <range/> is present (support for ranged
	// transfers, or the range requested).
	Range *Range
	// Hashes are the <hash/> children; a Hash with an empty Value only
	// announces the algorithm.
	Hashes []Hash
	// HashUsed lists the algorithms of the <hash-used/> children (XEP-0300
	// §3): the value follows in a checksum session-info (XEP-0234 §8.2).
	HashUsed []string
	// Extra keeps unknown children (thumbnails of XEP-0264, ...) in order.
	Extra []jingle.Element
}

// Algos lists the algorithms the file names, in <hash/> (with or without a
// value) and <hash-used/>, without duplicates.
func (f *File) Algos() []string {
	var out []string
	add := func(a string) {
		for _, x := range out {
			if x == a {
				return
			}
		}
		out = append(out, a)
	}
	for _, h := range f.Hashes {
		add(h.Algo)
	}
	for _, a := range f.HashUsed {
		add(a)
	}
	return out
}

// HashValues returns the hashes that carry a value.
func (f *File) HashValues() []Hash {
	var out []Hash
	for _, h := range f.Hashes {
		if len(h.Value) > 0 {
			out = append(out, h)
		}
	}
	return out
}

// Description is the <description xmlns='urn:xmpp:jingle:apps:file-transfer:5'/>
// of a content (XEP-0234 §5).
type Description struct {
	File File
	// Extra keeps unknown children of <description/>.
	Extra []jingle.Element
}

// Checksum is the <checksum/> session-info payload (XEP-0234 §8.2).
type Checksum struct {
	Creator string // "initiator" or "responder"; some peers omit it
	Name    string // the content name
	File    File
}

// Received is the <received/> session-info payload (XEP-0234 §8.1).
type Received struct {
	Creator string
	Name    string
}

func isFT(n xml.Name, local string) bool {
	// Children of <file/> inherit the file-transfer namespace; a peer that
	// writes them in no namespace is tolerated.
	return n.Local == local && (n.Space == NS || n.Space == "")
}

func isHashNS(space string) bool { return space == NSHashes || space == nsHashesV1 }

// readText reads the character data of the element just started, bounded.
func readText(d *xml.Decoder, what string) (string, error) {
	var b strings.Builder
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if depth == 0 {
				if b.Len()+len(t) > maxText {
					return "", fmt.Errorf("<%s/> longer than %d bytes: %w", what, maxText, ErrMalformed)
				}
				b.Write(t)
			}
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return b.String(), nil
			}
			depth--
		}
	}
}

func parseNonNeg(s, what string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: %w", what, s, ErrMalformed)
	}
	return n, nil
}

func attrOf(start xml.StartElement, local string) (string, bool) {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// decodeHash decodes a <hash/> or <hash-used/> just started.
func decodeHash(d *xml.Decoder, t xml.StartElement) (Hash, error) {
	algo, _ := attrOf(t, "algo")
	algo = strings.TrimSpace(algo)
	if algo == "" || len(algo) > 64 {
		return Hash{}, fmt.Errorf("<%s/> without a valid algo: %w", t.Name.Local, ErrMalformed)
	}
	s, err := readText(d, t.Name.Local)
	if err != nil {
		return Hash{}, err
	}
	v, err := decodeHashValue(s)
	if err != nil {
		return Hash{}, fmt.Errorf("<%s algo=%q/>: %w", t.Name.Local, algo, err)
	}
	return Hash{Algo: algo, Value: v}, nil
}

// UnmarshalXML implements xml.Unmarshaler for <range/>.
func (r *Range) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*r = Range{}
	var err error
	if v, ok := attrOf(start, "offset"); ok {
		if r.Offset, err = parseNonNeg(v, "range offset"); err != nil {
			return err
		}
	}
	if v, ok := attrOf(start, "length"); ok {
		if r.Length, err = parseNonNeg(v, "range length"); err != nil {
			return err
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if isHashNS(t.Name.Space) && t.Name.Local == "hash" {
				if len(r.Hashes) >= maxHashes {
					return fmt.Errorf("<range/>: too many hashes: %w", ErrMalformed)
				}
				h, err := decodeHash(d, t)
				if err != nil {
					return err
				}
				r.Hashes = append(r.Hashes, h)
				continue
			}
			if err := d.Skip(); err != nil {
				return err
			}
		}
	}
}

// MarshalXML implements xml.Marshaler for <range/>.
func (r Range) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Local: "range"}}
	if r.Offset != 0 {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "offset"}, Value: strconv.FormatInt(r.Offset, 10)})
	}
	if r.Length != 0 {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "length"}, Value: strconv.FormatInt(r.Length, 10)})
	}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if err := encodeHashes(enc, r.Hashes); err != nil {
		return err
	}
	return enc.EncodeToken(start.End())
}

func encodeHashes(enc *xml.Encoder, hs []Hash) error {
	for _, h := range hs {
		start := xml.StartElement{
			Name: xml.Name{Space: NSHashes, Local: "hash"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "algo"}, Value: h.Algo}},
		}
		if err := enc.EncodeElement(h.Base64(), start); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalXML implements xml.Unmarshaler for <file/>. It tolerates what
// real clients send (no date, no hash, <mediaType/>, children in any order)
// and keeps unknown children in Extra.
func (f *File) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*f = File{}
	n := 0
	var seen struct{ date, desc, media, name, size, rng bool }
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		t, ok := tok.(xml.StartElement)
		if !ok {
			if _, end := tok.(xml.EndElement); end {
				return nil
			}
			continue
		}
		if n++; n > maxFileChildren {
			return fmt.Errorf("<file/>: more than %d children: %w", maxFileChildren, ErrMalformed)
		}
		switch {
		case isHashNS(t.Name.Space) && t.Name.Local == "hash":
			if len(f.Hashes)+len(f.HashUsed) >= maxHashes {
				return fmt.Errorf("<file/>: too many hashes: %w", ErrMalformed)
			}
			h, err := decodeHash(d, t)
			if err != nil {
				return err
			}
			f.Hashes = append(f.Hashes, h)
		case isHashNS(t.Name.Space) && t.Name.Local == "hash-used":
			if len(f.Hashes)+len(f.HashUsed) >= maxHashes {
				return fmt.Errorf("<file/>: too many hashes: %w", ErrMalformed)
			}
			h, err := decodeHash(d, t)
			if err != nil {
				return err
			}
			f.HashUsed = append(f.HashUsed, h.Algo)
		case isFT(t.Name, "date") && !seen.date:
			s, err := readText(d, "date")
			if err != nil {
				return err
			}
			tm, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
			if perr != nil {
				// Keep what we cannot parse, rather than lose it.
				f.Extra = append(f.Extra, textElement(t.Name, s))
				continue
			}
			seen.date = true
			f.Date = tm
		case isFT(t.Name, "desc") && !seen.desc:
			s, err := readText(d, "desc")
			if err != nil {
				return err
			}
			seen.desc = true
			f.Desc = s
		case (isFT(t.Name, "media-type") || isFT(t.Name, "mediaType")) && !seen.media:
			s, err := readText(d, t.Name.Local)
			if err != nil {
				return err
			}
			seen.media = true
			f.MediaType = strings.TrimSpace(s)
		case isFT(t.Name, "name") && !seen.name:
			s, err := readText(d, "name")
			if err != nil {
				return err
			}
			seen.name = true
			f.Name = s
		case isFT(t.Name, "size") && !seen.size:
			s, err := readText(d, "size")
			if err != nil {
				return err
			}
			if f.Size, err = parseNonNeg(s, "size"); err != nil {
				return err
			}
			seen.size = true
			f.HasSize = true
		case isFT(t.Name, "range") && !seen.rng:
			var r Range
			if err := d.DecodeElement(&r, &t); err != nil {
				return err
			}
			seen.rng = true
			f.Range = &r
		default:
			var e jingle.Element
			if err := d.DecodeElement(&e, &t); err != nil {
				return err
			}
			f.Extra = append(f.Extra, e)
		}
	}
}

func textElement(name xml.Name, text string) jingle.Element {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(text))
	return jingle.Element{XMLName: name, Inner: b.Bytes()}
}

// MarshalXML implements xml.Marshaler for <file/>. It writes <media-type/>
// (the spelling of §5) whatever the peer used. Children are in no namespace,
// so they inherit the parent's: write File inside <description/> or
// <checksum/> (see Description.Element, Checksum.Element).
func (f File) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Local: "file"}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	text := func(local, v string) error {
		return enc.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: local}})
	}
	if !f.Date.IsZero() {
		if err := text("date", f.Date.Format(time.RFC3339Nano)); err != nil {
			return err
		}
	}
	if f.Desc != "" {
		if err := text("desc", f.Desc); err != nil {
			return err
		}
	}
	if f.MediaType != "" {
		if err := text("media-type", f.MediaType); err != nil {
			return err
		}
	}
	if f.Name != "" {
		if err := text("name", f.Name); err != nil {
			return err
		}
	}
	if f.Range != nil {
		if err := enc.Encode(f.Range); err != nil {
			return err
		}
	}
	if f.HasSize {
		if err := text("size", strconv.FormatInt(f.Size, 10)); err != nil {
			return err
		}
	}
	if err := encodeHashes(enc, f.Hashes); err != nil {
		return err
	}
	for _, a := range f.HashUsed {
		hu := xml.StartElement{
			Name: xml.Name{Space: NSHashes, Local: "hash-used"},
			Attr: []xml.Attr{{Name: xml.Name{Local: "algo"}, Value: a}},
		}
		if err := enc.EncodeToken(hu); err != nil {
			return err
		}
		if err := enc.EncodeToken(hu.End()); err != nil {
			return err
		}
	}
	for _, e := range f.Extra {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

// decodeFileParent decodes the children of a <description/> or <checksum/>:
// the first <file/> into f, the rest into extra.
func decodeFileParent(raw []byte, what string, f *File, extra *[]jingle.Element) error {
	d := xml.NewDecoder(bytes.NewReader(raw))
	// Skip to the root.
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("<%s/>: %v: %w", what, err, ErrMalformed)
		}
		if _, ok := tok.(xml.StartElement); ok {
			break
		}
	}
	found := false
	n := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("<%s/>: %w", what, wrapMalformed(err))
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if !found {
				return fmt.Errorf("<%s/> without <file/>: %w", what, ErrMalformed)
			}
			return nil
		case xml.StartElement:
			if n++; n > maxFileChildren {
				return fmt.Errorf("<%s/>: too many children: %w", what, ErrMalformed)
			}
			if isFT(t.Name, "file") && !found {
				if err := d.DecodeElement(f, &t); err != nil {
					return fmt.Errorf("<%s/>: %w", what, wrapMalformed(err))
				}
				found = true
				continue
			}
			var e jingle.Element
			if err := d.DecodeElement(&e, &t); err != nil {
				return fmt.Errorf("<%s/>: %w", what, wrapMalformed(err))
			}
			if extra != nil {
				*extra = append(*extra, e)
			}
		}
	}
}

// wrapMalformed makes any decoding error ErrMalformed (once).
func wrapMalformed(err error) error {
	if errors.Is(err, ErrMalformed) {
		return err
	}
	return fmt.Errorf("%v: %w", err, ErrMalformed)
}

// ParseDescription parses a content's <description/> (XEP-0234 §5). Errors
// wrap ErrMalformed: the element is in another namespace, has no <file/>,
// a negative size, an invalid hash, or exceeds the limits.
func ParseDescription(el jingle.Element) (*Description, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "description" {
		return nil, fmt.Errorf("filetransfer: <%s xmlns=%q> is not a file-transfer description: %w", el.XMLName.Local, el.XMLName.Space, ErrMalformed)
	}
	var d Description
	if err := decodeFileParent(el.Bytes(), "description", &d.File, &d.Extra); err != nil {
		return nil, fmt.Errorf("filetransfer: %w", err)
	}
	return &d, nil
}

// Element returns the <description/> element.
func (d Description) Element() jingle.Element {
	return mustElement(xml.Name{Space: NS, Local: "description"}, nil, d.File, d.Extra)
}

// ParseChecksum parses a <checksum/> session-info payload (XEP-0234 §8.2).
// The creator and name attributes are optional (the schema requires them;
// Conversations omits creator).
func ParseChecksum(el jingle.Element) (*Checksum, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "checksum" {
		return nil, fmt.Errorf("filetransfer: <%s xmlns=%q> is not a checksum: %w", el.XMLName.Local, el.XMLName.Space, ErrMalformed)
	}
	c := Checksum{Creator: el.Attr("creator"), Name: el.Attr("name")}
	if err := decodeFileParent(el.Bytes(), "checksum", &c.File, nil); err != nil {
		return nil, fmt.Errorf("filetransfer: %w", err)
	}
	return &c, nil
}

// Element returns the <checksum/> element.
func (c Checksum) Element() jingle.Element {
	return mustElement(xml.Name{Space: NS, Local: "checksum"}, nameAttrs(c.Creator, c.Name), c.File, nil)
}

// ParseReceived parses a <received/> session-info payload (XEP-0234 §8.1).
func ParseReceived(el jingle.Element) (*Received, error) {
	if el.XMLName.Space != NS || el.XMLName.Local != "received" {
		return nil, fmt.Errorf("filetransfer: <%s xmlns=%q> is not a received: %w", el.XMLName.Local, el.XMLName.Space, ErrMalformed)
	}
	return &Received{Creator: el.Attr("creator"), Name: el.Attr("name")}, nil
}

// Element returns the <received/> element.
func (r Received) Element() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: NS, Local: "received"}, Attrs: nameAttrs(r.Creator, r.Name)}
}

func nameAttrs(creator, name string) []xml.Attr {
	var as []xml.Attr
	if creator != "" {
		as = append(as, xml.Attr{Name: xml.Name{Local: "creator"}, Value: creator})
	}
	if name != "" {
		as = append(as, xml.Attr{Name: xml.Name{Local: "name"}, Value: name})
	}
	return as
}

// mustElement builds an element with a <file/> child and extra children.
// Marshalling our own model cannot fail except for invalid XML names, which
// only code produces.
func mustElement(name xml.Name, attrs []xml.Attr, f File, extra []jingle.Element) jingle.Element {
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	err := enc.Encode(f)
	for _, e := range extra {
		if err == nil {
			err = enc.Encode(e)
		}
	}
	if err == nil {
		err = enc.Flush()
	}
	if err != nil {
		panic(fmt.Sprintf("filetransfer: marshal <%s/>: %v", name.Local, err))
	}
	return jingle.Element{XMLName: name, Attrs: attrs, Inner: b.Bytes()}
}

// InfoKind tells which XEP-0234 session-info payload an element is.
type InfoKind int

// Session-info payloads of XEP-0234 §8.
const (
	InfoUnknown InfoKind = iota
	InfoChecksum
	InfoReceived
)

// ClassifyInfo tells which XEP-0234 session-info payload el is.
func ClassifyInfo(el jingle.Element) InfoKind {
	if el.XMLName.Space != NS {
		return InfoUnknown
	}
	switch el.XMLName.Local {
	case "checksum":
		return InfoChecksum
	case "received":
		return InfoReceived
	}
	return InfoUnknown
}
