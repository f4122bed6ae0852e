package socks5

import (
	"crypto/sha1"
	"encoding/hex"

	"mellium.im/xmpp/jid"
)

// DstAddr is the DST.ADDR of a bytestream: the lowercase hex SHA-1 of
// sid + requester + target (XEP-0065 §5.3.2 rule 1), with the JIDs in their
// canonical string form (jid.JID is already prepped, rule 4).
//
// In Jingle (XEP-0260 §2.2 and its notes 8 and 11) the sid is the
// <transport/>'s sid attribute, not the Jingle session's, and the
// "requester" is whoever offered the candidate: the initiator's candidates
// use SHA1(sid + initiator + responder), the responder's
// SHA1(sid + responder + initiator). So a party connecting to its peer's
// candidate uses DstAddr(sid, peer, self), and a party expecting
// connections on its own candidates, or activating its own proxy
// candidate, uses DstAddr(sid, self, peer).
func DstAddr(sid string, requester, target jid.JID) string {
	h := sha1.New()
	h.Write([]byte(sid))
	h.Write([]byte(requester.String()))
	h.Write([]byte(target.String()))
	return hex.EncodeToString(h.Sum(nil))
}
