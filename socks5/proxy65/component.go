package proxy65

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xjingle/xjingle/socks5"
)

// Namespaces answered by the Component.
const (
	NSBytestreams = socks5.NSBytestreams
	NSDiscoInfo   = "http://jabber.org/protocol/disco#info"
	NSDiscoItems  = "http://jabber.org/protocol/disco#items"
	NSPing        = "urn:xmpp:ping"
)

// Component defaults.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
	// DefaultDialTimeout bounds the TCP connect and the XEP-0114
	// handshake.
	DefaultDialTimeout = 10 * time.Second
	// maxSIDLen bounds the sid of an activation (the socks5 package's
	// limit for transport sids).
	maxSIDLen = 128
)

// ErrBadComponent wraps Component configuration errors returned by Run.
var ErrBadComponent = errors.New("proxy65: bad component configuration")

// Component connects a Proxy to an XMPP server as an external component
// (XEP-0114) and answers, as JID, the requests of XEP-0065: disco#info
// (§4, Example 6), the streamhost query (§4, Example 8) and activation
// (§6.3.5). Set the fields, then call Run.
type Component struct {
	// JID is the component's address (a domain, e.g. proxy.example.org),
	// declared in the server with Secret.
	JID jid.JID
	// Server is host:port of the server's component port (Prosody's
	// component_ports, 5347 by default).
	Server string
	// Secret is the component's shared secret.
	Secret []byte
	// Host and Port are the streamhost address given to clients: where
	// Proxy's listener is reachable from them (XEP-0065 §4: an IP address
	// or a DNS name resolvable to it).
	Host string
	Port uint16
	// Name is the identity name in disco#info (optional).
	Name string
	// Allow lists who may use the proxy (the streamhost query and
	// activation; disco and ping stay open): each entry a domain
	// ("example.org": every JID on it), a bare JID (every resource) or a
	// full JID, matched like Prosody's proxy65_acl. Empty means the
	// component's parent domain (proxy.example.org → example.org): the
	// server's own users, as mod_proxy65 allows by default. Others get
	// auth/forbidden.
	Allow []string
	// OpenAccess lets every JID the server routes to the component use
	// the proxy, remote ones included (mod_proxy65's proxy65_open_access).
	OpenAccess bool
	// Proxy receives the activations.
	Proxy *Proxy
	// Dialer dials the server; nil means a net.Dialer.
	Dialer socks5.ContextDialer
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts, doubled on each failure (with jitter) and reset after a
	// session that stayed up. Zero means DefaultMinBackoff/MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// OnState, if set, is called (from Run's goroutine) when the component
	// session comes up (up, nil) or goes down (false, why).
	OnState func(up bool, err error)
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger

	up atomic.Bool
}

// Connected reports whether the component session is up now.
func (c *Component) Connected() bool { return c.up.Load() }

// Run connects to the server, serves until the stream drops, and
// reconnects with backoff, until ctx is cancelled; then it closes the
// session and returns nil. It returns an error at once only for a
// configuration error (ErrBadComponent).
func (c *Component) Run(ctx context.Context) error {
	switch {
	case c.JID.Domainpart() == "" || c.JID.Localpart() != "" || c.JID.Resourcepart() != "":
		return fmt.Errorf("%w: component JID %q must be a bare domain", ErrBadComponent, c.JID)
	case c.Server == "":
		return fmt.Errorf("%w: no server address", ErrBadComponent)
	case len(c.Secret) == 0:
		return fmt.Errorf("%w: empty secret", ErrBadComponent)
	case c.Host == "" || c.Port == 0:
		return fmt.Errorf("%w: no streamhost address", ErrBadComponent)
	case c.Proxy == nil:
		return fmt.Errorf("%w: no proxy", ErrBadComponent)
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = DefaultMinBackoff
	}
	if maxB < minB {
		maxB = max(DefaultMaxBackoff, minB)
	}
	backoff := minB
	for ctx.Err() == nil {
		start := time.Now()
		err := c.session(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > maxB {
			backoff = minB // it was up for a while: not a crash loop
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		log.Warn("proxy65: component session ended; reconnecting", "server", c.Server, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
	return nil
}

// session runs one component session: dial, XEP-0114 handshake, serve.
func (c *Component) session(ctx context.Context, log *slog.Logger) error {
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", c.Server)
	if err != nil {
		return fmt.Errorf("proxy65: dial %s: %w", c.Server, err)
	}
	// The handshake reads from conn; bound it by the dial context too.
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stopHS := context.AfterFunc(dctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	sess, err := component.NewSession(dctx, c.JID, c.Secret, conn)
	hsCancelled := !stopHS()
	if err != nil || hsCancelled {
		conn.Close()
		if err == nil {
			err = dctx.Err()
		}
		return fmt.Errorf("proxy65: component handshake with %s as %s: %w", c.Server, c.JID, err)
	}
	conn.SetDeadline(time.Time{})
	log.Info("proxy65: component connected", "server", c.Server, "jid", c.JID.String())
	c.up.Store(true)
	if c.OnState != nil {
		c.OnState(true, nil)
	}
	// Cancelling ctx ends the stream: </stream:stream>, then the socket
	// (a server that does not answer must not hold Serve).
	stop := context.AfterFunc(ctx, func() {
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		sess.Close()
		conn.Close()
	})
	err = sess.Serve(xmpp.HandlerFunc(c.handleXMPP))
	if !stop() {
		err = nil // cancelled
	}
	conn.Close()
	c.up.Store(false)
	if err == nil && ctx.Err() == nil {
		err = errors.New("stream closed by the server")
	}
	if c.OnState != nil {
		c.OnState(false, err)
	}
	return err
}

// query is the payload of the IQs the component answers.
type query struct {
	XMLName  xml.Name
	SID      string  `xml:"sid,attr"`
	Node     string  `xml:"node,attr"`
	Activate *string `xml:"activate"`
}

// handleXMPP answers one top-level element of the component stream. IQs
// are answered at once (activation does not block); other stanzas are
// ignored.
func (c *Component) handleXMPP(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "iq" {
		return nil
	}
	iq, err := stanza.NewIQ(*start)
	if err != nil || (iq.Type != stanza.GetIQ && iq.Type != stanza.SetIQ) {
		return nil
	}
	d := xml.NewTokenDecoder(t)
	var q *query
	for {
		tok, err := d.Token()
		if err != nil {
			break // no payload (EOF at the IQ's end)
		}
		if se, ok := tok.(xml.StartElement); ok {
			q = &query{}
			if err := d.DecodeElement(q, &se); err != nil {
				return fmt.Errorf("proxy65: decode %s payload from %s: %w", iq.Type, iq.From, err)
			}
			break
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
	}
	_, err = xmlstream.Copy(t, c.answer(iq, q))
	return err
}

func stanzaErr(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	e := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		e.Text = map[string]string{"": text}
	}
	return e
}

// answer is the reply to iq with payload q (nil: none).
func (c *Component) answer(iq stanza.IQ, q *query) xml.TokenReader {
	if q == nil {
		return iq.Error(stanzaErr(stanza.Modify, stanza.BadRequest, "no payload"))
	}
	switch {
	case iq.Type == stanza.GetIQ && q.XMLName.Space == NSDiscoInfo:
		if q.Node != "" {
			return iq.Error(stanzaErr(stanza.Cancel, stanza.ItemNotFound, ""))
		}
		// XEP-0065 §4 Example 6; XEP-0030 §3.1 (disco#info itself).
		return iq.Result(xmlstream.Wrap(xmlstream.MultiReader(
			info.Identity{Category: "proxy", Type: "bytestreams", Name: c.Name}.TokenReader(),
			info.Feature{Var: NSBytestreams}.TokenReader(),
			info.Feature{Var: NSDiscoInfo}.TokenReader(),
			info.Feature{Var: NSPing}.TokenReader(),
		), xml.StartElement{Name: xml.Name{Space: NSDiscoInfo, Local: "query"}}))
	case iq.Type == stanza.GetIQ && q.XMLName == xml.Name{Space: NSPing, Local: "ping"}:
		// XEP-0199 §4.2 (monitoring tools ping components).
		return iq.Result(nil)
	case iq.Type == stanza.GetIQ && q.XMLName.Space == NSDiscoItems:
		if q.Node != "" {
			return iq.Error(stanzaErr(stanza.Cancel, stanza.ItemNotFound, ""))
		}
		return iq.Result(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSDiscoItems, Local: "query"}}))
	case q.XMLName == xml.Name{Space: NSBytestreams, Local: "query"} && !c.permitted(iq.From):
		// As mod_proxy65 answers a JID outside its access list.
		return iq.Error(stanzaErr(stanza.Auth, stanza.Forbidden, "not allowed to use this proxy"))
	case iq.Type == stanza.GetIQ && q.XMLName == xml.Name{Space: NSBytestreams, Local: "query"}:
		// XEP-0065 §4 Example 8.
		return iq.Result(xmlstream.Wrap(
			xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSBytestreams, Local: "streamhost"}, Attr: []xml.Attr{
				{Name: xml.Name{Local: "jid"}, Value: c.JID.String()},
				{Name: xml.Name{Local: "host"}, Value: c.Host},
				{Name: xml.Name{Local: "port"}, Value: strconv.Itoa(int(c.Port))},
			}}),
			xml.StartElement{Name: xml.Name{Space: NSBytestreams, Local: "query"}}))
	case iq.Type == stanza.SetIQ && q.XMLName == xml.Name{Space: NSBytestreams, Local: "query"} && q.Activate != nil:
		return c.activate(iq, q)
	}
	// RFC 6120 §8.4: an IQ for a payload we do not know.
	return iq.Error(stanzaErr(stanza.Cancel, stanza.ServiceUnavailable, ""))
}

// permitted reports whether from may use the proxy (see Allow).
func (c *Component) permitted(from jid.JID) bool {
	if c.OpenAccess {
		return true
	}
	allow := c.Allow
	if len(allow) == 0 {
		allow = []string{parentDomain(c.JID.Domainpart())}
	}
	for _, a := range allow {
		if matchJID(from, a) {
			return true
		}
	}
	return false
}

// parentDomain is d without its first label (proxy.example.org →
// example.org), or d itself when it has fewer than three labels.
func parentDomain(d string) string {
	if i := strings.IndexByte(d, '.'); i >= 0 && strings.Contains(d[i+1:], ".") {
		return d[i+1:]
	}
	return d
}

// matchJID reports whether j matches the access-list entry a: the parts
// a has must be equal (domains case-insensitively), the parts it lacks
// match anything.
func matchJID(j jid.JID, a string) bool {
	aj, err := jid.Parse(a)
	if err != nil {
		return false
	}
	if !strings.EqualFold(j.Domainpart(), aj.Domainpart()) {
		return false
	}
	if l := aj.Localpart(); l != "" && l != j.Localpart() {
		return false
	}
	if r := aj.Resourcepart(); r != "" && r != j.Resourcepart() {
		return false
	}
	return true
}

// activate handles the activation request of XEP-0065 §6.3.5.
func (c *Component) activate(iq stanza.IQ, q *query) xml.TokenReader {
	if q.SID == "" || len(q.SID) > maxSIDLen {
		return iq.Error(stanzaErr(stanza.Modify, stanza.BadRequest, "bad sid"))
	}
	target, err := jid.Parse(*q.Activate)
	if err != nil || target.Domainpart() == "" {
		return iq.Error(stanzaErr(stanza.Modify, stanza.JIDMalformed, "bad target JID"))
	}
	// The requester is the activation's sender: the hash of sid, its
	// full JID and the target must be the DST.ADDR both parties sent.
	err = c.Proxy.Activate(iq.From, q.SID, target)
	switch {
	case err == nil:
		return iq.Result(nil)
	case errors.Is(err, ErrNotFound):
		return iq.Error(stanzaErr(stanza.Cancel, stanza.ItemNotFound, "no bytestream for this sid, requester and target"))
	case errors.Is(err, ErrOneSided):
		return iq.Error(stanzaErr(stanza.Cancel, stanza.NotAllowed, "only one party is connected"))
	case errors.Is(err, ErrAlreadyActive):
		return iq.Error(stanzaErr(stanza.Cancel, stanza.NotAllowed, "already activated"))
	default:
		return iq.Error(stanzaErr(stanza.Wait, stanza.InternalServerError, ""))
	}
}
