package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
)

// Namespaces used by stanza errors.
const (
	NSStanzas     = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSJingleError = "urn:xmpp:jingle:errors:1"
)

// Stanza error types (RFC 6120 §8.3.2).
const (
	ErrorTypeAuth     = "auth"
	ErrorTypeCancel   = "cancel"
	ErrorTypeContinue = "continue"
	ErrorTypeModify   = "modify"
	ErrorTypeWait     = "wait"
)

// StanzaError is an XMPP stanza error (RFC 6120 §8.3) with an optional
// application-specific condition, such as a Jingle error (XEP-0166 §10:
// unknown-session, out-of-order, tie-break, unsupported-info,
// unsupported-transports) or an IBB one.
//
// Handlers return it (wrapped or not) to have it sent; SendIQ returns it when
// the peer answered with an error. Two StanzaErrors match with errors.Is when
// their Condition and AppCondition match (an empty field in the target matches
// anything).
type StanzaError struct {
	Type      string // ErrorType*
	Condition string // e.g. "item-not-found", "bad-request"
	Text      string
	// AppCondition is an optional application-specific condition element.
	AppCondition xml.Name
}

// Error implements error.
func (e *StanzaError) Error() string {
	s := "stanza error: " + e.Condition
	if e.AppCondition.Local != "" {
		s += " (" + e.AppCondition.Local + ")"
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Is reports whether target is a *StanzaError with the same conditions.
func (e *StanzaError) Is(target error) bool {
	t, ok := target.(*StanzaError)
	if !ok {
		return false
	}
	if t.Condition != "" && t.Condition != e.Condition {
		return false
	}
	if t.AppCondition.Local != "" && t.AppCondition != e.AppCondition {
		return false
	}
	return true
}

// NewStanzaError returns a StanzaError with a defined condition (RFC 6120 §8.3.3).
func NewStanzaError(typ, condition, text string) *StanzaError {
	return &StanzaError{Type: typ, Condition: condition, Text: text}
}

// JingleError returns the stanza error XEP-0166 §10 prescribes for a Jingle
// condition, e.g. JingleError("cancel", "item-not-found", "unknown-session").
func JingleError(typ, condition, jingleCondition string) *StanzaError {
	return &StanzaError{Type: typ, Condition: condition, AppCondition: xml.Name{Space: NSJingleError, Local: jingleCondition}}
}

// Well-known Jingle errors (XEP-0166 §10). Compare with errors.Is.
var (
	ErrUnknownSession        = JingleError(ErrorTypeCancel, "item-not-found", "unknown-session")
	ErrOutOfOrder            = JingleError(ErrorTypeWait, "unexpected-request", "out-of-order")
	ErrTieBreak              = JingleError(ErrorTypeCancel, "conflict", "tie-break")
	ErrUnsupportedInfo       = JingleError(ErrorTypeModify, "feature-not-implemented", "unsupported-info")
	ErrUnsupportedTransports = JingleError(ErrorTypeCancel, "feature-not-implemented", "unsupported-transports")
	ErrBadRequest            = NewStanzaError(ErrorTypeModify, "bad-request", "")
	ErrNotAcceptable         = NewStanzaError(ErrorTypeModify, "not-acceptable", "")
	ErrItemNotFound          = NewStanzaError(ErrorTypeCancel, "item-not-found", "")
	ErrServiceUnavailable    = NewStanzaError(ErrorTypeCancel, "service-unavailable", "")
	ErrFeatureNotImplemented = NewStanzaError(ErrorTypeCancel, "feature-not-implemented", "")
	ErrInternalServerError   = NewStanzaError(ErrorTypeCancel, "internal-server-error", "")
	ErrResourceConstraint    = NewStanzaError(ErrorTypeWait, "resource-constraint", "")
	ErrRemoteServerTimeout   = NewStanzaError(ErrorTypeWait, "remote-server-timeout", "")
)

// WithText returns a copy of e carrying text.
func (e *StanzaError) WithText(format string, args ...any) *StanzaError {
	c := *e
	c.Text = fmt.Sprintf(format, args...)
	return &c
}

// AsStanzaError returns the *StanzaError in err's chain, or
// internal-server-error for any other error.
func AsStanzaError(err error) *StanzaError {
	var se *StanzaError
	if errors.As(err, &se) {
		return se
	}
	return ErrInternalServerError
}

// MarshalXML encodes the <error/> element (RFC 6120 §8.3.2).
func (e *StanzaError) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	typ := e.Type
	if typ == "" {
		typ = ErrorTypeCancel
	}
	start := xml.StartElement{Name: xml.Name{Local: "error"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: typ}}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	cond := xml.StartElement{Name: xml.Name{Space: NSStanzas, Local: e.Condition}}
	if err := enc.EncodeToken(cond); err != nil {
		return err
	}
	if err := enc.EncodeToken(cond.End()); err != nil {
		return err
	}
	if e.Text != "" {
		t := xml.StartElement{Name: xml.Name{Space: NSStanzas, Local: "text"}}
		if err := enc.EncodeElement(e.Text, t); err != nil {
			return err
		}
	}
	if e.AppCondition.Local != "" {
		a := xml.StartElement{Name: e.AppCondition}
		if err := enc.EncodeToken(a); err != nil {
			return err
		}
		if err := enc.EncodeToken(a.End()); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

// UnmarshalXML decodes an <error/> element.
func (e *StanzaError) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*e = StanzaError{}
	for _, a := range start.Attr {
		if a.Name.Local == "type" {
			e.Type = a.Value
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Space == NSStanzas && t.Name.Local == "text":
				var s string
				if err := d.DecodeElement(&s, &t); err != nil {
					return err
				}
				e.Text = s
				continue
			case t.Name.Space == NSStanzas:
				e.Condition = t.Name.Local
			default:
				e.AppCondition = t.Name
			}
			if err := d.Skip(); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		}
	}
}

// ParseStanzaError decodes raw XML of an <error/> element.
func ParseStanzaError(raw []byte) (*StanzaError, error) {
	var e StanzaError
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&e); err != nil {
		return nil, fmt.Errorf("jingle: parse stanza error: %w", err)
	}
	return &e, nil
}
