// Package inline is a Jingle transport that carries a whole (tiny) stream in
// one stanza: the bytes travel as a XEP-0231 Bits of Binary <data/> element
// inside a single transport-info (XEP-0166 §7.2.13), instead of opening a
// bytestream. xjingle uses it for files up to a few KiB (the `inline` rung of
// the transport ladder, package transports).
//
// The namespace, urn:xjingle:jingle:transports:bob:0 (NS), is xjingle's own,
// not an XSF one: no XEP defines a Jingle transport for Bits of Binary, and we
// must not squat on urn:xmpp:*. Only peers that advertise NS in disco#info
// (other xjingle instances) are offered it.
//
// Protocol flow (the data may go either way: the side that sends the content
// writes, whoever offered the transport):
//
//	offerer                                      answerer
//	<transport xmlns=NS max-size='8192'/>  ───►  (session-initiate / transport-replace)
//	                                       ◄───  <transport xmlns=NS max-size='4096'/>  (the smaller limit)
//	[writer: Write buffers, at most max-size bytes; CloseWrite or Close sends]
//	transport-info:
//	<transport xmlns=NS>
//	  <data xmlns='urn:xmpp:bob' cid='sha1+HEX@bob.xmpp.org'
//	        type='application/octet-stream' max-age='0'>BASE64</data>
//	</transport>                           ───►  (result; or bad-request / not-acceptable)
//	                                             reader: the bytes, then io.EOF
//
// The cid follows XEP-0231 §2.5: SHA-1 of the bytes in hex; max-age='0'
// (§2.4) says the data is not to be cached. The receiver checks that there is
// exactly one <data/>, that its base64 is valid (whitespace, as in the XEP's
// own examples, is tolerated), that it decodes to at most the negotiated
// max-size and that the cid matches; otherwise it answers the transport-info
// with a stanza error and the transport fails (Conn and Read return an error
// wrapping jingle.ErrTransportFailed).
//
// The Conn is a whole net.Conn (deadlines, Close unblocks pending calls), but
// a one-shot one: Write only buffers (ErrTooLarge past max-size), the data
// leaves on CloseWrite, or on Close if CloseWrite was not called (an empty
// stream is a legal transfer). A side that only receives (by the content's
// 'senders') gets its Conn once the data arrived, so that until then the
// initiator may still replace the transport; a sending side gets it at once.
// When the ladder tells the transport the stream's size
// (transports.StreamSize) and it exceeds the negotiated max-size, Conn fails
// with jingle.ErrTransportFailed before any byte is written, and the ladder
// moves to the next rung.
//
// The package does not stream: nothing is sent before the writer is done, and
// a stream is bounded by what a server lets through in one stanza (keep
// max-size at most MaxStanzaSize). It does not cache or fetch BoB data
// (XEP-0231 §2.3): the data is pushed once, for one content.
package inline
