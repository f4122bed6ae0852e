package filetransfer

import "errors"

// Errors callers branch on (compare with errors.Is). Result.Err wraps one of
// them when it applies.
var (
	// ErrDeclined means the peer declined the offer or request (session-terminate
	// with reason decline, or busy).
	ErrDeclined = errors.New("filetransfer: declined by peer")
	// ErrHashMismatch means the received data does not match the hash the
	// sender announced. The file is not committed.
	ErrHashMismatch = errors.New("filetransfer: hash mismatch")
	// ErrSizeMismatch means the stream ended before the announced size, or
	// the peer sent more than it announced.
	ErrSizeMismatch = errors.New("filetransfer: size mismatch")
	// ErrNoHash means the peer sent no usable hash and WithRequireHash is set.
	ErrNoHash = errors.New("filetransfer: peer sent no usable hash")
	// ErrTimeout means a wait (for the peer's answer, for data) timed out.
	ErrTimeout = errors.New("filetransfer: timeout")
	// ErrUnconfirmed means a sender wrote every byte but the receiver
	// neither confirmed (<received/>, session-terminate success) nor
	// failed the transfer within the confirm wait (WithConfirmWait): the
	// tail may be stuck in a stalled proxy, or the receiver is gone.
	ErrUnconfirmed = errors.New("filetransfer: receiver did not confirm")
	// ErrPeerGone means the session ended (terminated by the peer with a
	// failure reason, or the stream broke) before the transfer completed.
	ErrPeerGone = errors.New("filetransfer: peer ended the session")
	// ErrMalformed means an element from the peer could not be used: not
	// XML of the expected shape, a negative size, too many children, an
	// invalid base64 hash.
	ErrMalformed = errors.New("filetransfer: malformed element")
	// ErrTooLarge means an offered file is larger than the configured limit
	// (WithMaxSize / Store.MaxSize).
	ErrTooLarge = errors.New("filetransfer: file too large")
	// ErrNoSpace means the download directory's file system has no room
	// for an offered file (checked when the file is created, where the
	// platform can reserve the space: Linux). Nothing is kept.
	ErrNoSpace = errors.New("filetransfer: not enough disk space")
	// ErrNotAvailable means a requested file is not shared (XEP-0234 §9.1).
	ErrNotAvailable = errors.New("filetransfer: file not available")
	// ErrRejected means our accept policy refused an incoming offer.
	ErrRejected = errors.New("filetransfer: offer rejected locally")
	// ErrBadRange means a peer asked for a range (XEP-0234 §6.4) that is
	// not inside the file; the session is terminated with
	// failed-application.
	ErrBadRange = errors.New("filetransfer: range outside the file")
	// ErrUnsupportedHash means no hash algorithm we can compute was named.
	ErrUnsupportedHash = errors.New("filetransfer: unsupported hash algorithm")
)
