// Package proxy65 is a SOCKS5 Bytestreams proxy (XEP-0065 §6, "mediated
// connection") that plugs into an XMPP server as an external component
// (XEP-0114), for servers that have no proxy of their own. `xjingle relay
// --proxy65-component` runs it.
//
// It has two halves:
//
//   - Proxy, the streamhost: it accepts SOCKS5 connections (the XEP-0065
//     handshake of package socks5: no authentication, CONNECT, ATYP 3 with a
//     40-hex-digit DST.ADDR, DST.PORT 0), holds them by DST.ADDR until the
//     target's and the requester's are both there (never more than two per
//     DST.ADDR) and the requester activates the stream, then splices the
//     two TCP connections together, both ways, with half-close. Connections
//     not activated within UnmatchedTimeout are dropped; Shutdown drains.
//   - Component, the XMPP side: a XEP-0114 component session (mellium's
//     component package) to the server's component port that answers
//     disco#info (identity proxy/bytestreams, XEP-0065 §4), the streamhost
//     query (§4, Example 7/8) and <activate/> (§6.3.5), and reconnects
//     with backoff when the stream drops.
//
// It is not a general SOCKS5 proxy (it never connects anywhere: the only
// "destinations" are the bytestreams it holds), supports neither UDP mode
// (XEP-0065 §8) nor authentication, keeps no access list beyond the
// XEP-0065 hash check (anyone the XMPP server routes to the component may
// use it; restrict that in the server), and does not pace or account
// traffic per user.
package proxy65
