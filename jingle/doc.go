// Package jingle implements the core of Jingle (XEP-0166): the XML model of the
// <jingle/> element, the session state machine, and a Manager that owns sessions
// and dispatches their contents to registered applications (descriptions) and
// transports.
//
// It is not an XMPP client: it talks to the network through a Signaller, which
// the client package implements over a real XMPP connection and package
// internal/xjtest implements in memory for tests. It carries no bytes itself:
// transports (ibb, socks5, transports/ice) hand out a net.Conn, and applications
// (jingle/filetransfer, rtp) use it.
//
// Protocol flow (XEP-0166 §6):
//
//	initiator                         responder
//	session-initiate  ───────────►    (ack; application decides)
//	                  ◄───────────    session-accept  (or session-terminate)
//	transport-info    ◄──────────►    transport-info  (candidates, per transport)
//	(bytes flow over the transport's net.Conn)
//	session-terminate ◄──────────►    (ack)
package jingle
