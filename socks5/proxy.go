package socks5

import (
	"context"
	"encoding/xml"
	"fmt"
	"net"
	"strconv"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// NSBytestreams is the XEP-0065 namespace.
const NSBytestreams = "http://jabber.org/protocol/bytestreams"

// StreamHost is a SOCKS5 bytestreams proxy (XEP-0065 §4): its JID, for
// activation, and its network address.
type StreamHost struct {
	JID  jid.JID
	Host string
	Port uint16
}

// Addr is the proxy's "host:port".
func (h StreamHost) Addr() string { return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))) }

type activateQuery struct {
	XMLName  xml.Name `xml:"http://jabber.org/protocol/bytestreams query"`
	SID      string   `xml:"sid,attr"`
	Activate string   `xml:"activate"`
}

// Activate asks the proxy to activate the bytestream sid between us (the
// requester, sig's JID) and target (XEP-0065 §6.3.5). Both parties must be
// connected to the proxy with DstAddr(sid, us, target). A refusal is the
// proxy's *jingle.StanzaError, wrapped.
//
// In Jingle the sid is the <transport/>'s sid (the one hashed into
// DST.ADDR): XEP-0260 Example 9 shows the session's sid, but the proxy
// checks SHA1(sid + requester + target) against DST.ADDR (XEP-0065
// §6.3.5), which XEP-0260 §2.2 computes from the transport sid, and
// deployed clients (Dino, Conversations) send the transport sid.
func Activate(ctx context.Context, sig jingle.Signaller, proxy jid.JID, sid string, target jid.JID) error {
	payload, err := xml.Marshal(activateQuery{SID: sid, Activate: target.String()})
	if err != nil {
		return fmt.Errorf("socks5: activate %s at %s: %w", sid, proxy, err)
	}
	if _, err := sig.SendIQ(ctx, proxy, "set", payload); err != nil {
		return fmt.Errorf("socks5: activate %s at %s: %w", sid, proxy, err)
	}
	return nil
}

// ParseActivate parses an activation request (the <query/> child of the
// IQ-set a proxy receives, XEP-0065 §6.3.5): the stream's sid and the
// target's JID. Proxies (and test doubles of them) use it.
func ParseActivate(payload []byte) (sid string, target jid.JID, err error) {
	var q activateQuery
	if err := xml.Unmarshal(payload, &q); err != nil {
		return "", jid.JID{}, fmt.Errorf("socks5: parse activate: %w", err)
	}
	if q.SID == "" || len(q.SID) > maxSIDLen {
		return "", jid.JID{}, fmt.Errorf("socks5: parse activate: bad sid %q", trunc(q.SID))
	}
	target, err = jid.Parse(q.Activate)
	if err != nil {
		return "", jid.JID{}, fmt.Errorf("socks5: parse activate: target: %w", err)
	}
	return q.SID, target, nil
}
