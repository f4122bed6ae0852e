package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"golang.org/x/net/proxy"
	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

// Namespaces the client itself answers or uses.
const (
	NSClient    = "jabber:client"
	NSStreams   = "http://etherx.jabber.org/streams"
	NSDiscoInfo = "http://jabber.org/protocol/disco#info"
	NSDiscoItem = "http://jabber.org/protocol/disco#items"
	NSCaps      = "http://jabber.org/protocol/caps"
	NSPing      = "urn:xmpp:ping"
	NSVersion   = "jabber:iq:version"
	// CapsNode is our XEP-0115 node.
	CapsNode = "https://xjingle.org/caps"
)

// Config configures Dial.
type Config struct {
	// JID is the account's address; a resourcepart, if any, is requested
	// when binding (Resource wins).
	JID      jid.JID
	Password string
	// Server is "host:port" to connect to instead of looking up SRV
	// records (RFC 6120 §3.2).
	Server string
	// DirectTLS uses TLS from the first byte (xmpps, XEP-0368) instead of
	// STARTTLS. With SRV lookup, _xmpps-client records are tried first
	// anyway.
	DirectTLS bool
	// CAFile is a PEM file of extra CA certificates to trust.
	CAFile string
	// InsecureSkipVerify disables certificate verification. Logged at
	// WARN on every connection.
	InsecureSkipVerify bool
	// Resource to bind; default "xjingle-" + random.
	Resource string
	// Priority of our presence (RFC 6121 §4.7.2.3).
	Priority int
	// Dialer carries the TCP connection to the server, e.g. a
	// *ProxyDialer for the user's SOCKS5 proxy; nil dials directly. A
	// Dialer with a method RemoteDNS() bool that reports true (a
	// ProxyDialer for socks5h://) resolves names itself: Dial then looks
	// up no SRV records and connects to Server, or the domain on port
	// 5222, through it, so that no DNS query about the
	// domain leaves this machine (Tor).
	Dialer proxy.ContextDialer
	// Logger; nil discards.
	Logger *slog.Logger
	// IQTimeout bounds SendIQ when the caller's ctx has no deadline
	// (default 30 s).
	IQTimeout time.Duration
}

// Client is one XMPP c2s session. It is safe for concurrent use.
type Client struct {
	cfg     Config
	sess    *xmpp.Session
	local   jid.JID
	log     *slog.Logger
	writeMu sync.Mutex

	mu       sync.Mutex
	iqs      map[xml.Name]jingle.IQHandler
	msgs     map[xml.Name]jingle.MessageHandler
	features []string
	ver      string
	pending  map[string]*pendingIQ
	closed   bool // Close was called
	ended    bool // the read loop ended: no answer will come any more

	pres *presenceTracker
	caps *capsCache

	ids     uint64
	idPfx   string
	done    chan struct{}
	readErr error
	wg      sync.WaitGroup
	once    sync.Once
}

type pendingIQ struct {
	to   jid.JID
	done func([]byte, error)
}

var (
	_ jingle.Signaller      = (*Client)(nil)
	_ jingle.FeatureQuerier = (*Client)(nil)
	_ jingle.AsyncIQSender  = (*Client)(nil)
)

// identity is what we answer disco#info with.
var identity = Identity{Category: "client", Type: "pc", Name: "xjingle"}

// Dial connects, authenticates, binds and sends initial presence. The
// returned Client is serving: its handlers run until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.JID.Localpart() == "" || cfg.JID.Domainpart() == "" {
		return nil, fmt.Errorf("client: JID %q needs a user and a domain", cfg.JID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IQTimeout <= 0 {
		cfg.IQTimeout = 30 * time.Second
	}
	res := cfg.Resource
	if res == "" {
		res = cfg.JID.Resourcepart()
	}
	if res == "" {
		res = "xjingle-" + randomHex(4)
	}
	origin, err := cfg.JID.WithResource(res)
	if err != nil {
		return nil, fmt.Errorf("client: resource %q: %w", res, err)
	}
	domain := cfg.JID.Domainpart()
	log := cfg.Logger.With("component", "client", "jid", cfg.JID.Bare().String())

	tlsCfg := &tls.Config{ServerName: domain, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("client: CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client: CA file %s: no PEM certificates", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.InsecureSkipVerify {
		log.Warn("TLS certificate verification is DISABLED: anyone on the path can read and change this session")
		tlsCfg.InsecureSkipVerify = true
	}

	conn, direct, err := dialServer(ctx, cfg, domain, tlsCfg)
	if err != nil {
		return nil, classify(fmt.Errorf("client: dial %s: %w", domain, err))
	}
	mechs := []sasl.Mechanism{sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain}
	features := []xmpp.StreamFeature{authFeature(cfg.Password, mechs), bindFeature(origin)}
	var state xmpp.SessionState
	if direct {
		state = xmpp.Secure
	} else {
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(tlsCfg)}, features...)
	}
	// Bound the handshake by ctx, through conn deadlines only. mellium
	// gets a ctx that never ends: on a ctx's end it sets a past deadline
	// and at once resets it to none (session.go setDeadline), which can
	// undo ours, or reset before the blocked read saw the past deadline,
	// and the handshake then hangs on a silent server.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	sess, err := xmpp.NewSession(context.WithoutCancel(ctx), origin.Domain(), origin, conn, state, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: features}
	}))
	if !stop() && err == nil {
		// ctx ended just now; the past deadline is being set and
		// would break the session later.
		err = ctx.Err()
	}
	if err != nil {
		conn.Close()
		// The conn deadline (ctx's deadline) may fire before ctx's
		// AfterFunc runs: the error is then an i/o timeout, not ctx's.
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, classify(fmt.Errorf("client: log in as %s: %w", cfg.JID.Bare(), err))
	}
	if sess.State()&xmpp.Secure == 0 {
		sess.Close()
		conn.Close()
		return nil, fmt.Errorf("client: %s: stream is not encrypted", domain)
	}
	_ = conn.SetDeadline(time.Time{})

	c := &Client{
		cfg: cfg, sess: sess, local: sess.LocalAddr(), log: log,
		iqs: map[xml.Name]jingle.IQHandler{}, msgs: map[xml.Name]jingle.MessageHandler{},
		pending: map[string]*pendingIQ{},
		pres:    newPresenceTracker(), caps: newCapsCache(),
		idPfx: randomHex(4), done: make(chan struct{}),
	}
	c.features = []string{NSDiscoInfo, NSCaps, NSPing, NSVersion}
	c.ver = capsVer([]Identity{identity}, c.features)
	c.registerBuiltins()
	c.wg.Add(1)
	go c.readLoop()
	if err := c.sendPresence(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("client: initial presence: %w", err)
	}
	log.Info("connected", "full", c.local.String())
	return c, nil
}

// dialServer returns a TCP (or TLS, for direct TLS) connection to the
// server: the explicit Server, or SRV records (xmpps-client first, then
// xmpp-client), or the domain on 5222.
func dialServer(ctx context.Context, cfg Config, domain string, tlsCfg *tls.Config) (net.Conn, bool, error) {
	var d proxy.ContextDialer = &net.Dialer{Timeout: 30 * time.Second}
	remoteDNS := false
	if cfg.Dialer != nil {
		d = cfg.Dialer
		if rd, ok := d.(interface{ RemoteDNS() bool }); ok {
			remoteDNS = rd.RemoteDNS()
		}
	}
	type target struct {
		addr   string
		direct bool
	}
	var targets []target
	switch {
	case cfg.Server != "":
		targets = append(targets, target{cfg.Server, cfg.DirectTLS})
	case remoteDNS:
		// No local DNS at all: the proxy resolves the domain, on
		// the fallback port (RFC 6120 §3.2.2).
		targets = append(targets, target{net.JoinHostPort(domain, "5222"), cfg.DirectTLS})
	default:
		if _, srvs, err := net.DefaultResolver.LookupSRV(ctx, "xmpps-client", "tcp", domain); err == nil {
			for _, s := range srvs {
				if s.Target != "." {
					targets = append(targets, target{net.JoinHostPort(trimDot(s.Target), strconv.Itoa(int(s.Port))), true})
				}
			}
		}
		if _, srvs, err := net.DefaultResolver.LookupSRV(ctx, "xmpp-client", "tcp", domain); err == nil {
			for _, s := range srvs {
				if s.Target != "." {
					targets = append(targets, target{net.JoinHostPort(trimDot(s.Target), strconv.Itoa(int(s.Port))), false})
				}
			}
		}
		if len(targets) == 0 {
			targets = append(targets, target{net.JoinHostPort(domain, "5222"), cfg.DirectTLS})
		}
	}
	var errs []error
	for _, t := range targets {
		conn, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !t.direct {
			return conn, false, nil
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			errs = append(errs, err)
			continue
		}
		return tc, true, nil
	}
	return nil, false, errors.Join(errs...)
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LocalJID implements jingle.Signaller: our full JID.
func (c *Client) LocalJID() jid.JID { return c.local }

// Done is closed when the connection ends (Close, or the server closed it).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the read loop ended (nil before that, or after Close).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.readErr
	default:
		return nil
	}
}

// Close sends unavailable presence, closes the stream and waits for the
// read loop. It is idempotent.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		ended := c.ended
		c.mu.Unlock()
		// A server that stopped reading must not hold Close for the
		// full writeTimeout.
		_ = c.writeWithin([]byte(`<presence xmlns="jabber:client" type="unavailable"/>`), closeTimeout)
		c.writeMu.Lock()
		_ = c.sess.Conn().SetWriteDeadline(time.Now().Add(closeTimeout))
		err = c.sess.Close()
		c.writeMu.Unlock()
		if ended {
			// The server had ended the stream already: writing
			// our end may fail (broken pipe), and says nothing.
			err = nil
		}
		// The server answers </stream:stream>; don't wait for a server
		// that never does.
		select {
		case <-c.done:
		case <-time.After(closeTimeout):
		}
		_ = c.sess.Conn().Close()
		c.wg.Wait()
		c.failPending(ErrClosed)
	})
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("client: close: %w", err)
	}
	return nil
}

func (c *Client) failPending(err error) {
	c.mu.Lock()
	p := c.pending
	c.pending = map[string]*pendingIQ{}
	c.mu.Unlock()
	for _, pi := range p {
		pi.done(nil, err)
	}
}

// write sends raw XML of one stanza.
//
// The stanza goes to the connection as bytes, not through mellium's token
// encoder: after negotiation this package is the only writer (Close, too,
// goes through writeMu), and re-tokenising an 88 KiB IBB block costs more
// than the rest of the send path. Callers build stanzas from xml.Marshal
// output and escaped attribute values only, so they are well-formed.
//
// (mellium's Send would also arm a goroutine that sets a past write deadline
// on the connection when the ctx it was given ends — after the write, it can
// land on another write in progress and break the TLS stream.) ctx is only
// checked before writing; a stuck write is bounded by writeTimeout.
func (c *Client) write(ctx context.Context, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.writeWithin(raw, writeTimeout)
}

// writeWithin writes raw with a write deadline of timeout from now. The
// deadline is set under writeMu, just before this write, so it can never
// land on another write.
func (c *Client) writeWithin(raw []byte, timeout time.Duration) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	conn := c.sess.Conn()
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := conn.Write(raw)
	if err != nil {
		// A failed write leaves the stream in an unknown state (maybe
		// half a stanza): end the connection so that everything
		// waiting on it fails now instead of hanging.
		c.log.Warn("write failed; closing the connection", "err", err)
		_ = conn.Close()
		return err
	}
	return nil
}

// writeTimeout bounds one stanza write: a server that stops reading for this
// long is gone.
const writeTimeout = 2 * time.Minute

// closeTimeout bounds each step of Close: the goodbye writes, and the wait
// for the server's </stream:stream>.
const closeTimeout = 3 * time.Second

func (c *Client) nextID() string {
	c.mu.Lock()
	c.ids++
	n := c.ids
	c.mu.Unlock()
	return c.idPfx + "-" + strconv.FormatUint(n, 36)
}

// stanzaStart builds the opening tag of a stanza.
func stanzaStart(kind, id, typ string, to jid.JID) []byte {
	var b bytes.Buffer
	b.WriteString("<" + kind + ` xmlns="jabber:client"`)
	if id != "" {
		b.WriteString(` id="`)
		xml.EscapeText(&b, []byte(id))
		b.WriteByte('"')
	}
	if typ != "" {
		b.WriteString(` type="`)
		xml.EscapeText(&b, []byte(typ))
		b.WriteByte('"')
	}
	if !to.Equal(jid.JID{}) {
		b.WriteString(` to="`)
		xml.EscapeText(&b, []byte(to.String()))
		b.WriteByte('"')
	}
	b.WriteByte('>')
	return b.Bytes()
}

// SendIQ implements jingle.Signaller.
func (c *Client) SendIQ(ctx context.Context, to jid.JID, typ string, payload []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.IQTimeout)
		defer cancel()
	}
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	if err := c.SendIQAsync(ctx, to, typ, payload, func(b []byte, err error) { ch <- answer{b, err} }); err != nil {
		return nil, err
	}
	a := <-ch
	return a.b, a.err
}

// SendIQAsync implements jingle.AsyncIQSender: the IQ is written before it
// returns; done gets the answer later (or ctx.Err(), or ErrClosed).
func (c *Client) SendIQAsync(ctx context.Context, to jid.JID, typ string, payload []byte, done func([]byte, error)) error {
	if typ != "get" && typ != "set" {
		return fmt.Errorf("client: IQ type %q is not get or set", typ)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	id := c.nextID()
	var once sync.Once
	finish := func(b []byte, err error) { once.Do(func() { done(b, err) }) }
	// take removes the pending entry; only its taker may call finish, so
	// done runs once and never after SendIQAsync returned an error.
	take := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.pending[id]
		delete(c.pending, id)
		return ok
	}
	stop := context.AfterFunc(ctx, func() {
		if take() {
			finish(nil, ctx.Err())
		}
	})
	p := &pendingIQ{to: to, done: func(b []byte, err error) { stop(); finish(b, err) }}
	c.mu.Lock()
	if c.closed || c.ended {
		// After the read loop ended nothing would answer: fail now
		// rather than at the IQ timeout.
		c.mu.Unlock()
		stop()
		return ErrClosed
	}
	c.pending[id] = p
	c.mu.Unlock()
	raw := append(stanzaStart("iq", id, typ, to), payload...)
	raw = append(raw, "</iq>"...)
	err := c.write(ctx, raw)
	if err != nil {
		stop()
		if !take() {
			return nil // ctx ended meanwhile and done was told
		}
		return fmt.Errorf("client: send IQ to %s: %w", to, err)
	}
	return nil
}

// HandleIQ implements jingle.Signaller. Handlers may be registered at any
// time.
func (c *Client) HandleIQ(name xml.Name, h jingle.IQHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.iqs[name]; ok {
		panic(fmt.Sprintf("client: duplicate IQ handler for %v", name))
	}
	c.iqs[name] = h
}

// HandleMessage implements jingle.Signaller.
func (c *Client) HandleMessage(name xml.Name, h jingle.MessageHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.msgs[name]; ok {
		panic(fmt.Sprintf("client: duplicate message handler for %v", name))
	}
	c.msgs[name] = h
}

// SendMessage implements jingle.Signaller.
func (c *Client) SendMessage(ctx context.Context, to jid.JID, typ string, payload []byte) error {
	c.mu.Lock()
	gone := c.closed || c.ended
	c.mu.Unlock()
	if gone {
		return fmt.Errorf("client: send message to %s: %w", to, ErrClosed)
	}
	raw := append(stanzaStart("message", c.nextID(), typ, to), payload...)
	raw = append(raw, "</message>"...)
	if err := c.write(ctx, raw); err != nil {
		return fmt.Errorf("client: send message to %s: %w", to, err)
	}
	return nil
}

// AddFeature implements jingle.Signaller: the feature is advertised in
// disco#info, and a new presence carries the new caps hash.
func (c *Client) AddFeature(ns string) {
	c.mu.Lock()
	for _, f := range c.features {
		if f == ns {
			c.mu.Unlock()
			return
		}
	}
	c.features = append(c.features, ns)
	c.ver = capsVer([]Identity{identity}, c.features)
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		// Re-announce caps so peers see the new feature (XEP-0115 §4).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.sendPresence(ctx); err != nil {
			c.log.Debug("presence update failed", "err", err)
		}
	}
}

// Features returns the features we advertise.
func (c *Client) Features() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.features...)
}

func (c *Client) sendPresence(ctx context.Context) error {
	c.mu.Lock()
	ver := c.ver
	c.mu.Unlock()
	raw := fmt.Sprintf(`<presence xmlns="jabber:client"><priority>%d</priority><c xmlns="%s" hash="sha-1" node="%s" ver="%s"/></presence>`,
		c.cfg.Priority, NSCaps, CapsNode, ver)
	return c.write(ctx, []byte(raw))
}

// bindFeature is resource binding (RFC 6120 §7) asking for origin's
// resourcepart. mellium v0.22.0's own client side sends the request with an
// empty <resource/> (bindPayload writes the JID, not the resource, as its
// text), so the server always picked the resource; only Negotiate is
// replaced here, listing and parsing stay mellium's.
func bindFeature(origin jid.JID) xmpp.StreamFeature {
	f := xmpp.BindResource()
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		if s.State()&xmpp.Received != 0 {
			return negotiate(ctx, s, data) // the server side is not ours
		}
		r := s.TokenReader()
		defer r.Close()
		w := s.TokenWriter()
		defer w.Close()

		const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
		id := randomHex(8)
		iq := xml.StartElement{Name: xml.Name{Space: NSClient, Local: "iq"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "type"}, Value: "set"}, {Name: xml.Name{Local: "id"}, Value: id}}}
		bind := xml.StartElement{Name: xml.Name{Space: nsBind, Local: "bind"}}
		toks := []xml.Token{iq, bind}
		if res := origin.Resourcepart(); res != "" {
			el := xml.StartElement{Name: xml.Name{Space: nsBind, Local: "resource"}}
			toks = append(toks, el, xml.CharData(res), el.End())
		}
		toks = append(toks, bind.End(), iq.End())
		for _, t := range toks {
			if err := w.EncodeToken(t); err != nil {
				return 0, nil, err
			}
		}
		if err := w.Flush(); err != nil {
			return 0, nil, err
		}

		d := xml.NewTokenDecoder(r)
		var start xml.StartElement
		for {
			tok, err := d.Token()
			if err != nil {
				return 0, nil, err
			}
			if se, ok := tok.(xml.StartElement); ok {
				start = se
				break
			}
		}
		if start.Name.Local != "iq" {
			return 0, nil, fmt.Errorf("client: bind: got <%s/>, want the answer IQ", start.Name.Local)
		}
		var resp struct {
			ID   string              `xml:"id,attr"`
			Type string              `xml:"type,attr"`
			JID  string              `xml:"urn:ietf:params:xml:ns:xmpp-bind bind>jid"`
			Err  *jingle.StanzaError `xml:"error"`
		}
		if err := d.DecodeElement(&resp, &start); err != nil {
			return 0, nil, fmt.Errorf("client: bind: %w", err)
		}
		switch {
		case resp.ID != id:
			return 0, nil, fmt.Errorf("client: bind: answer to IQ %q, want %q", resp.ID, id)
		case resp.Type == "error" && resp.Err != nil:
			return 0, nil, fmt.Errorf("client: bind resource %q: %w", origin.Resourcepart(), resp.Err)
		case resp.Type != "result":
			return 0, nil, fmt.Errorf("client: bind: answer of type %q", resp.Type)
		}
		j, err := jid.Parse(resp.JID)
		if err != nil || !j.Bare().Equal(origin.Bare()) || j.Resourcepart() == "" {
			return 0, nil, fmt.Errorf("client: bind: server assigned %q to %s", resp.JID, origin.Bare())
		}
		s.UpdateAddr(j)
		return xmpp.Ready, nil, nil
	}
	return f
}

// authFeature is mellium's SASL feature with its failures marked ErrAuth: a
// <failure/> from the server (RFC 6120 §6.5) reaches us as an error with
// only the server's text, so the feature that failed is what tells.
func authFeature(password string, mechs []sasl.Mechanism) xmpp.StreamFeature {
	f := xmpp.SASL("", password, mechs...)
	negotiate := f.Negotiate
	f.Negotiate = func(ctx context.Context, s *xmpp.Session, data interface{}) (xmpp.SessionState, io.ReadWriter, error) {
		st, rw, err := negotiate(ctx, s, data)
		var ne net.Error
		if err != nil && !errors.As(err, &ne) && !errors.Is(err, io.EOF) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return st, rw, err
	}
	return f
}
