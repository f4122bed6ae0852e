package jingle

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Element is an XML element kept as it arrived: its name, attributes and raw
// inner XML. The Jingle model uses it for descriptions, transports, security
// preconditions and unknown extensions, so nothing a peer sends is lost when a
// stanza is parsed and written again.
type Element struct {
	XMLName xml.Name
	Attrs   []xml.Attr
	Inner   []byte // raw inner XML
}

// Namespace is the element's namespace.
func (e Element) Namespace() string { return e.XMLName.Space }

// Attr returns the value of the attribute with this local name (no namespace).
func (e Element) Attr(local string) string {
	for _, a := range e.Attrs {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// IsZero reports whether e is the zero Element.
func (e Element) IsZero() bool { return e.XMLName.Local == "" }

// UnmarshalXML keeps the element as it is. The default namespace declaration
// is dropped (it is restored from XMLName when the element is written); prefix
// declarations (xmlns:p) are kept in Attrs with the local name "xmlns:p" and
// no namespace, so that Inner stays well-formed when written back.
func (e *Element) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var raw struct {
		Inner []byte `xml:",innerxml"`
	}
	if err := d.DecodeElement(&raw, &start); err != nil {
		return err
	}
	e.XMLName = start.Name
	e.Attrs = e.Attrs[:0]
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			continue // the default namespace is XMLName.Space
		case a.Name.Space == "xmlns":
			// A prefix declaration (xmlns:p='…') is kept, written back
			// verbatim, so that prefixed children in Inner (e.g.
			// <rtcpf:rtcp-fb/> in an RTP description) stay well-formed.
			a.Name = xml.Name{Local: "xmlns:" + a.Name.Local}
		}
		e.Attrs = append(e.Attrs, a)
	}
	e.Inner = raw.Inner
	return nil
}

// MarshalXML writes the element back.
func (e Element) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: e.XMLName, Attr: e.Attrs}
	if e.XMLName.Space == "" {
		// An element in no namespace must say so, or it would inherit
		// its parent's default namespace when written inside it.
		start.Attr = append([]xml.Attr{{Name: xml.Name{Local: "xmlns"}}}, e.Attrs...)
	}
	return enc.EncodeElement(struct {
		Inner []byte `xml:",innerxml"`
	}{e.Inner}, start)
}

// Bytes returns the element as raw XML.
func (e Element) Bytes() []byte {
	b, err := xml.Marshal(e)
	if err != nil {
		// Marshal of an Element fails only for an invalid name, which only
		// code (not a peer) can produce.
		panic(fmt.Sprintf("jingle: marshal element %v: %v", e.XMLName, err))
	}
	return b
}

// Decode unmarshals the element into v (a struct with encoding/xml tags).
func (e Element) Decode(v any) error {
	if err := xml.Unmarshal(e.Bytes(), v); err != nil {
		return fmt.Errorf("jingle: decode <%s xmlns=%q>: %w", e.XMLName.Local, e.XMLName.Space, err)
	}
	return nil
}

// NewElement marshals v (a struct with encoding/xml tags, or an xml.Marshaler)
// and returns it as an Element.
func NewElement(v any) (Element, error) {
	b, err := xml.Marshal(v)
	if err != nil {
		return Element{}, fmt.Errorf("jingle: marshal %T: %w", v, err)
	}
	return ParseElement(b)
}

// ParseElement parses raw XML of one element.
func ParseElement(raw []byte) (Element, error) {
	var e Element
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&e); err != nil {
		return Element{}, fmt.Errorf("jingle: parse element: %w", err)
	}
	return e, nil
}
