package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
)

// NS is the Jingle namespace (XEP-0166 §15.1).
const NS = "urn:xmpp:jingle:1"

// Action is the value of the <jingle/> 'action' attribute (XEP-0166 §7.2).
type Action string

// Actions (XEP-0166 §7.2.1–§7.2.15).
const (
	ActionContentAccept    Action = "content-accept"    // §7.2.1
	ActionContentAdd       Action = "content-add"       // §7.2.2
	ActionContentModify    Action = "content-modify"    // §7.2.3
	ActionContentReject    Action = "content-reject"    // §7.2.4
	ActionContentRemove    Action = "content-remove"    // §7.2.5
	ActionDescriptionInfo  Action = "description-info"  // §7.2.6
	ActionSecurityInfo     Action = "security-info"     // §7.2.7
	ActionSessionAccept    Action = "session-accept"    // §7.2.8
	ActionSessionInfo      Action = "session-info"      // §7.2.9
	ActionSessionInitiate  Action = "session-initiate"  // §7.2.10
	ActionSessionTerminate Action = "session-terminate" // §7.2.11
	ActionTransportAccept  Action = "transport-accept"  // §7.2.12
	ActionTransportInfo    Action = "transport-info"    // §7.2.13
	ActionTransportReject  Action = "transport-reject"  // §7.2.14
	ActionTransportReplace Action = "transport-replace" // §7.2.15
)

// Actions lists every action XEP-0166 §7.2 defines.
var Actions = []Action{
	ActionContentAccept, ActionContentAdd, ActionContentModify, ActionContentReject,
	ActionContentRemove, ActionDescriptionInfo, ActionSecurityInfo, ActionSessionAccept,
	ActionSessionInfo, ActionSessionInitiate, ActionSessionTerminate, ActionTransportAccept,
	ActionTransportInfo, ActionTransportReject, ActionTransportReplace,
}

// Valid reports whether a is one of the actions of XEP-0166 §7.2. A peer
// sending any other value gets <bad-request/>.
func (a Action) Valid() bool {
	for _, x := range Actions {
		if a == x {
			return true
		}
	}
	return false
}

// String implements fmt.Stringer.
func (a Action) String() string { return string(a) }

// Content creators and senders (XEP-0166 §7.3).
const (
	CreatorInitiator = "initiator"
	CreatorResponder = "responder"

	SendersBoth      = "both"
	SendersInitiator = "initiator"
	SendersResponder = "responder"
	SendersNone      = "none"

	// DispositionSession is the default content disposition.
	DispositionSession = "session"
)

// Reason conditions (XEP-0166 §7.4).
const (
	ReasonAlternativeSession      = "alternative-session"
	ReasonBusy                    = "busy"
	ReasonCancel                  = "cancel"
	ReasonConnectivityError       = "connectivity-error"
	ReasonDecline                 = "decline"
	ReasonExpired                 = "expired"
	ReasonFailedApplication       = "failed-application"
	ReasonFailedTransport         = "failed-transport"
	ReasonGeneralError            = "general-error"
	ReasonGone                    = "gone"
	ReasonIncompatibleParameters  = "incompatible-parameters"
	ReasonMediaError              = "media-error"
	ReasonSecurityError           = "security-error"
	ReasonSuccess                 = "success"
	ReasonTimeout                 = "timeout"
	ReasonUnsupportedApplications = "unsupported-applications"
	ReasonUnsupportedTransports   = "unsupported-transports"
)

// ReasonConditions lists the conditions of XEP-0166 §7.4.
var ReasonConditions = []string{
	ReasonAlternativeSession, ReasonBusy, ReasonCancel, ReasonConnectivityError,
	ReasonDecline, ReasonExpired, ReasonFailedApplication, ReasonFailedTransport,
	ReasonGeneralError, ReasonGone, ReasonIncompatibleParameters, ReasonMediaError,
	ReasonSecurityError, ReasonSuccess, ReasonTimeout, ReasonUnsupportedApplications,
	ReasonUnsupportedTransports,
}

// Limits on what a peer may put in one <jingle/> element. Larger elements are
// refused with <bad-request/>; the Signaller bounds the stanza size itself.
const (
	MaxContents = 64  // <content/> children
	MaxSIDLen   = 256 // bytes of the 'sid' attribute
	maxExtra    = 64  // other children of <jingle/>, <content/> or <reason/>
)

var (
	errNotJingle   = errors.New("not a <jingle xmlns='urn:xmpp:jingle:1'/> element")
	errTooMany     = errors.New("too many child elements")
	errMissingAttr = errors.New("missing attribute")
)

// Jingle is the <jingle/> element (XEP-0166 §7.1). Children other than
// <content/> and <reason/> (session-info payloads, <group/> of XEP-0338,
// unknown extensions) are kept in Extra, in order, so that nothing a peer sends
// is lost.
type Jingle struct {
	Action    Action
	Initiator string // full JID; RECOMMENDED for session-initiate only (§7.1)
	Responder string // full JID; RECOMMENDED for session-accept only (§7.1)
	SID       string
	Contents  []WireContent
	Reason    *Reason
	Extra     []Element
}

// WireContent is the <content/> element as it is on the wire (XEP-0166 §7.3).
// Description, Transport and Security are matched by local name in any
// namespace; other children are kept in Extra. (The session-level view of a
// content, with its transport and stream, is Content.)
type WireContent struct {
	Creator     string // "initiator" or "responder"; peers such as StanzaJS may omit it in some actions
	Disposition string // default "session"
	Name        string
	Senders     string // default "both"
	Description *Element
	Transport   *Element
	Security    *Element
	Extra       []Element
}

// Reason is the <reason/> element (XEP-0166 §7.4).
type Reason struct {
	// Condition is the local name of the condition element (one of
	// ReasonConditions; unknown ones are kept as they are).
	Condition string
	Text      string
	// AlternativeSID is the <sid/> of an <alternative-session/> condition.
	AlternativeSID string
	// Extra holds the application-specific children (other namespaces).
	Extra []Element
}

// String returns the condition and text, for logs and errors.
func (r Reason) String() string {
	s := r.Condition
	if s == "" {
		s = "(no reason)"
	}
	if r.AlternativeSID != "" {
		s += " " + r.AlternativeSID
	}
	if r.Text != "" {
		s += ": " + r.Text
	}
	return s
}

// EffectiveCreator returns Creator, or "initiator" when it is absent (the
// default of XEP-0166 §7.3).
func (c WireContent) EffectiveCreator() string {
	if c.Creator == "" {
		return CreatorInitiator
	}
	return c.Creator
}

// EffectiveSenders returns Senders, or "both" when it is absent (§7.3).
func (c WireContent) EffectiveSenders() string {
	if c.Senders == "" {
		return SendersBoth
	}
	return c.Senders
}

// EffectiveDisposition returns Disposition, or "session" when it is absent.
func (c WireContent) EffectiveDisposition() string {
	if c.Disposition == "" {
		return DispositionSession
	}
	return c.Disposition
}

// ParseJingle parses raw XML of one <jingle xmlns='urn:xmpp:jingle:1'/>
// element. It checks the XML only; the Manager checks the semantics (required
// attributes, contents) per action.
func ParseJingle(raw []byte) (*Jingle, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	var j Jingle
	if err := d.Decode(&j); err != nil {
		return nil, fmt.Errorf("jingle: parse: %w", err)
	}
	return &j, nil
}

// Marshal returns the element as raw XML.
func (j *Jingle) Marshal() ([]byte, error) {
	b, err := xml.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("jingle: marshal %s: %w", j.Action, err)
	}
	return b, nil
}

func attr(local, v string) xml.Attr { return xml.Attr{Name: xml.Name{Local: local}, Value: v} }

// MarshalXML implements xml.Marshaler.
func (j Jingle) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "jingle"}}
	if j.Action != "" {
		start.Attr = append(start.Attr, attr("action", string(j.Action)))
	}
	if j.Initiator != "" {
		start.Attr = append(start.Attr, attr("initiator", j.Initiator))
	}
	if j.Responder != "" {
		start.Attr = append(start.Attr, attr("responder", j.Responder))
	}
	if j.SID != "" {
		start.Attr = append(start.Attr, attr("sid", j.SID))
	}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	for i := range j.Contents {
		if err := enc.Encode(&j.Contents[i]); err != nil {
			return err
		}
	}
	if j.Reason != nil {
		if err := enc.Encode(j.Reason); err != nil {
			return err
		}
	}
	for _, e := range j.Extra {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

// isJingleChild reports whether n is a child of <jingle/> in the Jingle
// namespace with this local name.
func isJingleChild(n xml.Name, local string) bool {
	return n.Local == local && n.Space == NS
}

// UnmarshalXML implements xml.Unmarshaler.
func (j *Jingle) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	if start.Name.Space != NS || start.Name.Local != "jingle" {
		return fmt.Errorf("<%s xmlns=%q>: %w", start.Name.Local, start.Name.Space, errNotJingle)
	}
	*j = Jingle{}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "action":
			j.Action = Action(a.Value)
		case "initiator":
			j.Initiator = a.Value
		case "responder":
			j.Responder = a.Value
		case "sid":
			j.SID = a.Value
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
			switch {
			case isJingleChild(t.Name, "content"):
				if len(j.Contents) >= MaxContents {
					return fmt.Errorf("<content/>: %w", errTooMany)
				}
				var c WireContent
				if err := d.DecodeElement(&c, &t); err != nil {
					return err
				}
				j.Contents = append(j.Contents, c)
			case isJingleChild(t.Name, "reason") && j.Reason == nil:
				var r Reason
				if err := d.DecodeElement(&r, &t); err != nil {
					return err
				}
				j.Reason = &r
			default:
				if len(j.Extra) >= maxExtra {
					return fmt.Errorf("<jingle/>: %w", errTooMany)
				}
				var e Element
				if err := d.DecodeElement(&e, &t); err != nil {
					return err
				}
				j.Extra = append(j.Extra, e)
			}
		}
	}
}

// MarshalXML implements xml.Marshaler.
func (c WireContent) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "content"}}
	if c.Creator != "" {
		start.Attr = append(start.Attr, attr("creator", c.Creator))
	}
	if c.Disposition != "" {
		start.Attr = append(start.Attr, attr("disposition", c.Disposition))
	}
	if c.Name != "" {
		start.Attr = append(start.Attr, attr("name", c.Name))
	}
	if c.Senders != "" {
		start.Attr = append(start.Attr, attr("senders", c.Senders))
	}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	for _, e := range []*Element{c.Description, c.Transport, c.Security} {
		if e != nil {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
	}
	for _, e := range c.Extra {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

// UnmarshalXML implements xml.Unmarshaler.
func (c *WireContent) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*c = WireContent{}
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "creator":
			c.Creator = a.Value
		case "disposition":
			c.Disposition = a.Value
		case "name":
			c.Name = a.Value
		case "senders":
			c.Senders = a.Value
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
			var e Element
			if err := d.DecodeElement(&e, &t); err != nil {
				return err
			}
			// §7.3 and §6.2: one <description/>, one <transport/>, an
			// optional <security/>, in any namespace. A second one of
			// a kind is kept with the unknown children.
			var slot **Element
			switch e.XMLName.Local {
			case "description":
				slot = &c.Description
			case "transport":
				slot = &c.Transport
			case "security":
				slot = &c.Security
			}
			if slot != nil && *slot == nil {
				*slot = &e
				continue
			}
			if len(c.Extra) >= maxExtra {
				return fmt.Errorf("<content/>: %w", errTooMany)
			}
			c.Extra = append(c.Extra, e)
		}
	}
}

// MarshalXML implements xml.Marshaler.
func (r Reason) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: "reason"}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if r.Condition != "" {
		cond := xml.StartElement{Name: xml.Name{Space: NS, Local: r.Condition}}
		if err := enc.EncodeToken(cond); err != nil {
			return err
		}
		if r.AlternativeSID != "" {
			if err := enc.EncodeElement(r.AlternativeSID, xml.StartElement{Name: xml.Name{Space: NS, Local: "sid"}}); err != nil {
				return err
			}
		}
		if err := enc.EncodeToken(cond.End()); err != nil {
			return err
		}
	}
	if r.Text != "" {
		if err := enc.EncodeElement(r.Text, xml.StartElement{Name: xml.Name{Space: NS, Local: "text"}}); err != nil {
			return err
		}
	}
	for _, e := range r.Extra {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return enc.EncodeToken(start.End())
}

// UnmarshalXML implements xml.Unmarshaler. The first child in the Jingle
// namespace other than <text/> is the condition; children in other namespaces
// are kept in Extra.
func (r *Reason) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	*r = Reason{}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			switch {
			case isJingleChild(t.Name, "text"):
				var s string
				if err := d.DecodeElement(&s, &t); err != nil {
					return err
				}
				r.Text = s
			case t.Name.Space == NS && r.Condition == "":
				r.Condition = t.Name.Local
				if t.Name.Local == ReasonAlternativeSession {
					var alt struct {
						SID string `xml:"urn:xmpp:jingle:1 sid"`
					}
					if err := d.DecodeElement(&alt, &t); err != nil {
						return err
					}
					r.AlternativeSID = strings.TrimSpace(alt.SID)
				} else if err := d.Skip(); err != nil {
					return err
				}
			default:
				if len(r.Extra) >= maxExtra {
					return fmt.Errorf("<reason/>: %w", errTooMany)
				}
				var e Element
				if err := d.DecodeElement(&e, &t); err != nil {
					return err
				}
				r.Extra = append(r.Extra, e)
			}
		}
	}
}
