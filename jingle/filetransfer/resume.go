package filetransfer

// Resume of interrupted transfers (XEP-0234 §6.4 "Ranged Transfers").
//
// Receiver: with Store.Resume, an offer whose sender supports ranges (a
// <range/> in the offer, §5) is received into
// "<dir>/.xjingle-resume-<key>.part" with a JSON sidecar
// "<dir>/.xjingle-resume-<key>.json" (peer bare JID, offered name, size,
// date, offered hashes, bytes written). The sidecar is rewritten after an
// fsync of the data every resumeSyncEvery bytes and when the transfer
// fails, so after a crash or kill it never claims more than is on disk. A
// later offer with the same key (and equal hashes where both have one)
// resumes: the receiver's session-accept carries <range offset='N'/> (§6.1,
// Example 3), the N bytes on disk are re-hashed so that the final hash
// covers the whole file, and the data is appended from N.
//
// A sender that ignores the range sends the whole file: the receiver reads
// size-N bytes, sees data past the end (or a hash mismatch) and fails the
// transfer with media-error; the partial data is then dropped, so the next
// attempt starts from 0. Offers without <range/> (the sender does not
// support ranges) are never resumed: they get a fresh temporary file and the
// partial state of an earlier attempt is kept for a sender that does.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

const (
	resumePrefix = ".xjingle-resume-"
	resumeSide   = ".json"
	// resumeSyncEvery is how many bytes are written between two fsyncs
	// (and sidecar updates) of a resumable file.
	resumeSyncEvery = 4 << 20
	// maxSidecar bounds the sidecar we read back.
	maxSidecar = 64 << 10
)

// resumeBusy holds the part files in use in this process: a second offer
// with the same key while the first runs gets a fresh temporary file.
var resumeBusy sync.Map // path → struct{}

// ResumeKey is the key of a resumable transfer: hex(sha256) of the peer's
// bare JID, the offered name, size and date (NUL-separated, date in RFC 3339
// with nanoseconds, UTC).
func ResumeKey(peer jid.JID, name string, size int64, date time.Time) string {
	h := sha256.New()
	h.Write([]byte(peer.Bare().String()))
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(size, 10)))
	h.Write([]byte{0})
	if !date.IsZero() {
		h.Write([]byte(date.UTC().Format(time.RFC3339Nano)))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ResumeState is the sidecar of a partial transfer kept for resume.
type ResumeState struct {
	Peer    string    `json:"peer"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Date    time.Time `json:"date,omitzero"`
	Hashes  []Hash    `json:"hashes,omitempty"`
	Written int64     `json:"written"`
}

// resumable is the resume state of an IncomingFile.
type resumable struct {
	side   string // sidecar path
	state  ResumeState
	synced int64 // in.n when the last checkpoint was started
	keep   bool  // keep the partial data on Abort
	// busy is closed when the checkpoint running in the background (a
	// goroutine owned by the IncomingFile, joined by wait) is done; nil
	// when none ever ran.
	busy chan struct{}
}

// wait joins the background checkpoint, if one runs.
func (r *resumable) wait() {
	if r != nil && r.busy != nil {
		<-r.busy
	}
}

// sameHashes reports whether two hash lists agree on every algorithm both
// carry a value for.
func sameHashes(a, b []Hash) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Algo == y.Algo && len(x.Value) > 0 && len(y.Value) > 0 && !bytes.Equal(x.Value, y.Value) {
				return false
			}
		}
	}
	return true
}

// CreateResumable is Create for an offer from peer that may resume a
// partial transfer kept earlier: it returns the file and the offset to
// request (the bytes already on disk, re-hashed). Without Store.Resume, for
// an unknown size, or when f has no <range/> (the sender does not support
// ranged transfers), it is Create with offset 0.
func (s *Store) CreateResumable(peer jid.JID, f File, algos ...string) (*IncomingFile, int64, error) {
	size := int64(-1)
	if f.HasSize {
		size = f.Size
	}
	if !s.Resume || size <= 0 || f.Range == nil {
		in, err := s.Create(f.Name, size, algos...)
		return in, 0, err
	}
	if s.MaxSize > 0 && size > s.MaxSize {
		return nil, 0, fmt.Errorf("filetransfer: store %s: %d bytes (limit %d): %w", f.Name, size, s.MaxSize, ErrTooLarge)
	}
	key := ResumeKey(peer, f.Name, size, f.Date)
	part := filepath.Join(s.Dir, resumePrefix+key+tempSuffix)
	if _, busy := resumeBusy.LoadOrStore(part, struct{}{}); busy {
		in, err := s.Create(f.Name, size, algos...)
		return in, 0, err
	}
	in, off, err := s.openResumable(peer, f, size, part, algos)
	if err != nil {
		resumeBusy.Delete(part)
		return nil, 0, err
	}
	return in, off, nil
}

func (s *Store) openResumable(peer jid.JID, f File, size int64, part string, algos []string) (*IncomingFile, int64, error) {
	side := part[:len(part)-len(tempSuffix)] + resumeSide
	want := ResumeState{Peer: peer.Bare().String(), Name: f.Name, Size: size, Date: f.Date, Hashes: f.HashValues()}
	off := int64(0)
	if st, ok := readSidecar(side); ok && st.Peer == want.Peer && st.Name == want.Name && st.Size == size &&
		st.Date.Equal(want.Date) && sameHashes(st.Hashes, want.Hashes) && st.Written > 0 && st.Written < size {
		off = st.Written
		if len(want.Hashes) == 0 {
			want.Hashes = st.Hashes
		}
	}
	// Never follow a link planted in the directory.
	if fi, err := os.Lstat(part); err == nil && !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("filetransfer: store: %s is not a regular file", part)
	}
	flags := os.O_RDWR | os.O_CREATE
	if off == 0 {
		flags |= os.O_TRUNC
	}
	fh, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("filetransfer: store: open %s: %w", part, err)
	}
	h := NewHasher(append([]string{AlgoSHA256}, algos...)...)
	if off > 0 {
		// Re-hash what is on disk: the final hash covers the whole file.
		n, err := io.Copy(h, io.NewSectionReader(fh, 0, off))
		if err == nil && n < off {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			// Shorter than the sidecar says (the data was lost): start over.
			off = 0
			h = NewHasher(append([]string{AlgoSHA256}, algos...)...)
		}
	}
	if err := fh.Truncate(off); err != nil {
		fh.Close()
		return nil, 0, fmt.Errorf("filetransfer: store: truncate %s: %w", part, err)
	}
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		fh.Close()
		return nil, 0, fmt.Errorf("filetransfer: store: seek %s: %w", part, err)
	}
	// Reserve the rest; on failure the partial file stays for a later try.
	if err := reserve(fh, off, size-off); err != nil {
		fh.Close()
		if off == 0 {
			os.Remove(part)
		}
		return nil, 0, fmt.Errorf("filetransfer: store %s in %s: %w", f.Name, s.Dir, err)
	}
	want.Written = off
	in := &IncomingFile{
		store: s, name: s.StoredName(f.Name), size: size, tmp: part, f: fh, h: h, n: off, offset: off,
		res: &resumable{side: side, state: want, synced: off, keep: true},
	}
	if err := in.writeSidecar(in.n); err != nil {
		fh.Close()
		return nil, 0, err
	}
	return in, off, nil
}

// readSidecar reads a sidecar; ok is false if it is missing or unusable.
func readSidecar(path string) (ResumeState, bool) {
	var st ResumeState
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxSidecar {
		return st, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return st, false
	}
	return parseSidecar(b)
}

// parseSidecar decodes a sidecar (from disk: a tampered one must not crash
// or mislead us into reading past the file; the final hash check catches
// wrong data).
func parseSidecar(b []byte) (ResumeState, bool) {
	var st ResumeState
	if len(b) > maxSidecar || json.Unmarshal(b, &st) != nil {
		return ResumeState{}, false
	}
	if st.Written < 0 || st.Size < 0 || st.Written > st.Size || len(st.Hashes) > maxHashes {
		return ResumeState{}, false
	}
	return st, true
}

// writeSidecar records the resume state (Written = in.n) atomically.
func (in *IncomingFile) writeSidecar(written int64) error {
	r := in.res
	st := r.state
	st.Written = written
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("filetransfer: resume state: %w", err)
	}
	tmp := r.side + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("filetransfer: resume state: %w", err)
	}
	if err := os.Rename(tmp, r.side); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("filetransfer: resume state: %w", err)
	}
	return nil
}

// checkpoint fsyncs the data and records it in the sidecar every
// resumeSyncEvery bytes. The periodic checkpoints run in the background so
// the receive loop never waits for the disk (an fsync every 4 MiB in line
// halved the direct SOCKS5 throughput); one at a time, and the sidecar
// records only bytes written before that fsync began, so it never claims
// more than is on disk. force (Abort keeping the partial file) waits for
// the running one and syncs everything written, in line.
func (in *IncomingFile) checkpoint(force bool) {
	r := in.res
	if r == nil {
		return
	}
	if force {
		r.wait()
		if in.f.Sync() == nil && in.writeSidecar(in.n) == nil {
			r.synced = in.n
		}
		return
	}
	if in.n-r.synced < resumeSyncEvery {
		return
	}
	if r.busy != nil {
		select {
		case <-r.busy:
		default:
			return // the previous one still runs; the next write retries
		}
	}
	n, f, done := in.n, in.f, make(chan struct{})
	r.synced, r.busy = n, done
	go func() {
		defer close(done)
		if f.Sync() == nil {
			in.writeSidecar(n)
		}
	}()
}

// Offset is the number of bytes that were already on disk when the file was
// created (a resumed transfer), 0 otherwise.
func (in *IncomingFile) Offset() int64 { return in.offset }

// DropResume makes Abort discard the partial data instead of keeping it for
// resume (the data is known to be bad: hash mismatch, size lie).
func (in *IncomingFile) DropResume() {
	if in.res != nil {
		in.res.keep = false
	}
}

// release forgets the resume state after Commit or Abort.
func (in *IncomingFile) release(removeSide bool) {
	if in.res == nil {
		return
	}
	if removeSide {
		// Best effort: a stale sidecar without its .part is never used
		// (CreateResumable truncates a fresh part file).
		os.Remove(in.res.side)
	}
	resumeBusy.Delete(in.tmp)
}
