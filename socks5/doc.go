// Package socks5 implements SOCKS5 Bytestreams (XEP-0065) and the Jingle
// SOCKS5 Bytestreams transport method (XEP-0260, namespace
// urn:xmpp:jingle:transports:s5b:1).
//
// It has three layers:
//
//   - the RFC 1928 handshake as XEP-0065 profiles it (no authentication,
//     CONNECT, ATYP 3 with the 40-hex-digit DST.ADDR, DST.PORT 0):
//     ClientHandshake and Dialer on the client side, Server (a streamhost
//     that accepts only expected DST.ADDR values) on the other;
//   - DstAddr, the SHA-1 that names a bytestream, and Activate, the
//     XEP-0065 §6.3.5 activation of a mediated (proxy) bytestream;
//   - Factory, a jingle.TransportFactory whose transports offer direct and
//     proxy candidates, connect to the peer's in parallel, nominate one per
//     XEP-0260 §2.4 and hand the application the winning TCP connection.
//
// It is not a general SOCKS5 proxy: it never relays traffic to a destination
// other than its own bytestreams, supports neither authentication nor UDP
// (XEP-0065 §8), and it does not discover proxies (the client package asks
// the server for its mod_proxy65 and passes it in with WithProxy). Fallback
// to another transport (transport-replace) is the caller's job: a failed
// negotiation makes Conn return an error wrapping jingle.ErrTransportFailed.
package socks5
