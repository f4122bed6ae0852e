// Package client is xjingle's XMPP client connection (RFC 6120/6121) on
// mellium.im/xmpp: it dials (SRV or an explicit host:port, optionally through
// the user's SOCKS5 proxy: ProxyDialer, with socks5h:// for no local DNS),
// secures the stream (STARTTLS or direct TLS, with
// certificate verification), authenticates (SCRAM, PLAIN only over TLS),
// binds a resource, sends presence with entity caps (XEP-0115) and answers
// disco#info (XEP-0030) and ping (XEP-0199).
//
// A *Client implements jingle.Signaller, jingle.FeatureQuerier and
// jingle.AsyncIQSender, so a jingle.Manager runs on it. It also discovers what
// the server offers Jingle: a SOCKS5 proxy (XEP-0065) and STUN/TURN services
// (XEP-0215).
//
// It is not a general-purpose chat client: it has no roster management, no
// message archive and no stream management (XEP-0198).
//
// Stanzas are read by one goroutine (the read loop), which hands each IQ
// request and message payload to the handler registered for its element name.
// IQ answers are matched to requests by id in this package, not in mellium, so
// that an IQ can be written now and its answer awaited later (IBB pipelining).
package client
