// Package ice is the Jingle transport that carries a stream over a WebRTC
// data channel: ICE (XEP-0176, RFC 8445, trickle per RFC 8838) for NAT
// traversal, DTLS authenticated by the fingerprints in the signalling
// (XEP-0320), and SCTP data channels (XEP-0343), built on pion/webrtc.
//
// Two wire forms are spoken, each by its own factory so that a Manager can
// advertise and accept both and answers in the form the peer used:
//
//   - NewFactory: <transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'
//     sctp-port='5000' max-message-size='…'> wrapping an ICE-UDP transport
//     (Conversations 2.13+);
//   - NewICEUDPFactory: an ICE-UDP transport with <sctpmap
//     xmlns='urn:xmpp:jingle:transports:dtls-sctp:1'/> next to the
//     fingerprint (XEP-0343 v0.3, StanzaJS).
//
// The offering side creates the PeerConnection and one reliable, ordered
// data channel labelled with the content name; the answering side takes the
// channel the peer opens. Candidates gathered within a short wait go in the
// offer or answer, later ones are trickled in transport-info with
// <gathering-complete/> at the end; remote candidates are added as they
// arrive, and kept until the peer's description is known. Content.Conn
// returns a *Conn (a net.Conn with deadlines, bounded buffering and
// CloseWrite).
//
// The XML model (ICEUDP, DataChannel, Candidate, Fingerprint, SCTPMap) and
// its mapping to Pion's SDP and candidate strings are exported for the
// RTP side and for tests.
//
// ICE restarts (XEP-0176 §5.9) work both ways: Transport.Restart (or
// Conn.RestartICE) sends new credentials and candidates of a higher
// generation in transport-info, and a transport-info with a new ufrag and
// pwd from the peer is answered the same way; the data channel carries on
// over the new pair. Probe gathers candidates without a peer, for
// diagnostics (xjingle probe).
//
// This package is not: XEP-0215 discovery (the ICE servers are given as
// options), RTP media, or the transport ladder.
package ice
