// Package filetransfer implements the Jingle file-transfer application
// (XEP-0234, namespace urn:xmpp:jingle:apps:file-transfer:5) with XEP-0300
// hashes (urn:xmpp:hashes:2), and the Store that receives files safely to
// disk.
//
// It is an Application for a jingle.Manager: it sends files (push, §6.1),
// asks peers for files (pull, §6.2), and receives both. It carries no bytes
// itself and does not know which transport it runs on: it copies to and from
// the net.Conn that jingle.Content.Conn hands it (IBB, SOCKS5, ICE, ...). It
// is not a user interface: the accept policy and the progress display are
// callbacks (WithAcceptPolicy, WithOnTransfer) that the CLI implements.
//
// Protocol flow of a push (XEP-0234 §6.1, §8):
//
//	sender (initiator)                     receiver (responder)
//	session-initiate  ──────────────────►  <file> name, size, <hash-used algo='sha-256'/>
//	                  ◄──────────────────  session-accept (after the accept policy)
//	exactly size bytes ═════════════════►  written to ".xjingle-<random>.part", hashed on the fly
//	session-info <checksum/> ───────────►  (may arrive before the last byte, or after)
//	                  ◄──────────────────  session-info <received/>  (size and hash matched,
//	                  ◄──────────────────  session-terminate success   file renamed into place)
//
// The sender reads the file once: it announces the algorithm with
// <hash-used/> and sends the value in a checksum session-info after the bytes
// (§8.2). The receiver never waits for the end of the stream (some peers
// never close it): it reads exactly the announced size. A file whose size or
// hash does not match is never presented under its final name (see Store).
//
// A pull (§6.2) is the same with the roles swapped: the requester initiates a
// session whose content has senders='responder' and a <file/> selector; the
// peer's App finds the file with the WithShared callback and sends it.
//
// Ranged transfers and resume (§6.4): Send offers an empty <range/>
// (support). A receiver whose Store has Resume set keeps a failed transfer
// of such an offer as ".xjingle-resume-<key>.part" plus a JSON sidecar
// (never under the final name; see CreateResumable and ResumeKey); when the
// same peer offers the same file again, its session-accept carries
// <range offset='N'/>, the N bytes on disk are re-hashed and only the rest is
// received. A sender honours a <range offset length/> in the session-accept
// (push) or in the request (pull): it sends only those bytes, reads the rest
// of the file for hashing only, and its checksum carries the whole file's
// hash. Result.Offset is where the sent data started, Result.Bytes what
// crossed the wire. A range outside the file is refused (ErrBadRange,
// failed-application). A receiver asks for a byte range of an offered file
// with an accept decision (WithAcceptDecision, Decision.Range): the bytes
// are stored as "<name>.range-<offset>-<end>", checked by size (the whole
// file's hash cannot be checked; Verified is false with VerifyNote
// "byte range"). Requesting a range with Request is not supported.
//
// Folders: a name with "/" separators ("photos/2024/a.jpg") is stored under
// its relative path inside the Store's Dir (SanitizePath, os.Root: no
// component and no symbolic link leads out of Dir), or flat with
// Store.Flat. Send offers whatever SendOptions.Name says.
package filetransfer
