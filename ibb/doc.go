// Package ibb implements In-Band Bytestreams (XEP-0047) as a net.Conn, and
// the Jingle IBB transport (XEP-0261) on top of it.
//
// A Handler serves the IBB streams of one jingle.Signaller (one XMPP
// connection). Streams are opened with Handler.Open or awaited with
// Handler.Expect, by peer full JID and sid; Handler.JingleTransport returns
// the jingle.TransportFactory for urn:xmpp:jingle:transports:ibb:1.
//
// Protocol flow (XEP-0047 §2, XEP-0261 §2.1):
//
//	opener (Jingle initiator)              acceptor
//	[session-initiate / -accept carry <transport block-size sid/>]
//	<open block-size sid/>   ─────────►    (result, or resource-constraint / not-acceptable)
//	<data seq=0 sid>base64   ─────────►    (result; delayed while the reader is behind)
//	<data seq=1 ...>         ─────────►    ...   (up to the window in flight)
//	                         ◄─────────    <data seq=0 .../>  (the other direction, own seq)
//	<close sid/>             ─────────►    (result; reader sees io.EOF)
//
// Data is sent in IQs only (stanza='iq'); <data/> in messages (XEP-0047 §4)
// is accepted when it arrives. Flow control: a sender keeps at most a window
// of <data/> IQs unacknowledged; a receiver whose buffer is full delays its
// acknowledgements until the application reads. Pipelining needs a Signaller
// that implements jingle.AsyncIQSender (to keep blocks in order on the wire);
// with others the window is 1.
//
// The package does not run Jingle sessions (package jingle does), does not
// support additional IBB sessions inside one Jingle transport (XEP-0261 §2.4),
// nor half-closed streams: a <close/> ends both directions.
package ibb
