package filetransfer

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// Hash function textual names (XEP-0300 §3: the IANA registry plus the
// table of additional names) that this package can compute.
const (
	AlgoSHA1       = "sha-1"
	AlgoSHA256     = "sha-256"
	AlgoSHA512     = "sha-512"
	AlgoBLAKE2b256 = "blake2b-256"
	AlgoBLAKE2b512 = "blake2b-512"
)

// maxDigestLen bounds a hash value a peer may send (sha-512 and blake2b-512
// are 64 bytes).
const maxDigestLen = 64

// Supported reports whether algo is a hash function this package computes.
// The name is compared exactly: XEP-0300 names are lower case.
func Supported(algo string) bool {
	_, ok := newHash(algo)
	return ok
}

// strength orders the supported algorithms, strongest first; sha-1 is last
// and weak: it is checked when the peer sends it, but a match of sha-1 alone
// does not count as verification (XEP-0234 §12 recommends the strongest
// algorithm both parties support; XEP-0414 deprecates sha-1).
var strength = []string{AlgoSHA512, AlgoBLAKE2b512, AlgoBLAKE2b256, AlgoSHA256, AlgoSHA1}

// weak reports whether a match of algo alone is not enough to call a file
// verified.
func weak(algo string) bool { return algo == AlgoSHA1 }

func newHash(algo string) (hash.Hash, bool) {
	switch algo {
	case AlgoSHA1:
		return sha1.New(), true
	case AlgoSHA256:
		return sha256.New(), true
	case AlgoSHA512:
		return sha512.New(), true
	case AlgoBLAKE2b256:
		h, err := blake2b.New256(nil)
		return h, err == nil
	case AlgoBLAKE2b512:
		h, err := blake2b.New512(nil)
		return h, err == nil
	}
	return nil, false
}

// Hash is an XEP-0300 <hash algo='…'>base64</hash> element. An empty Value
// is the empty <hash/> of older XEP-0234 versions: the algorithm is
// announced, the value follows in a checksum.
type Hash struct {
	Algo  string
	Value []byte
}

// String returns "algo:base64", for logs.
func (h Hash) String() string { return h.Algo + ":" + h.Base64() }

// Base64 returns the value as XEP-0300 §3 writes it (standard base64, padded,
// no whitespace).
func (h Hash) Base64() string { return base64.StdEncoding.EncodeToString(h.Value) }

// decodeHashValue decodes the character data of a <hash/>. XEP-0300 §3 says
// no whitespace and padded base64; peers that wrap lines or drop padding are
// tolerated.
func decodeHashValue(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, nil
	}
	if len(s) > base64.StdEncoding.EncodedLen(maxDigestLen) {
		return nil, fmt.Errorf("hash value of %d characters: %w", len(s), ErrMalformed)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil, fmt.Errorf("hash value: %v: %w", err, ErrMalformed)
	}
	return b, nil
}

// Hasher computes several hashes over one stream: write the data once (it is
// an io.Writer, for io.TeeReader or io.MultiWriter) and read every Sum.
// Unsupported algorithms are ignored. The zero Hasher computes nothing.
type Hasher struct {
	algos []string
	hs    []hash.Hash
}

// NewHasher returns a Hasher for the supported algorithms among algos
// (duplicates are computed once).
func NewHasher(algos ...string) *Hasher {
	h := &Hasher{}
	for _, a := range algos {
		if slices.Contains(h.algos, a) {
			continue
		}
		if x, ok := newHash(a); ok {
			h.algos = append(h.algos, a)
			h.hs = append(h.hs, x)
		}
	}
	return h
}

// Write implements io.Writer; it never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	for _, x := range h.hs {
		x.Write(p)
	}
	return len(p), nil
}

// Algos lists the algorithms being computed.
func (h *Hasher) Algos() []string { return slices.Clone(h.algos) }

// Sum returns the hash of algo so far, and whether it is being computed.
func (h *Hasher) Sum(algo string) (Hash, bool) {
	for i, a := range h.algos {
		if a == algo {
			return Hash{Algo: a, Value: h.hs[i].Sum(nil)}, true
		}
	}
	return Hash{}, false
}

// Sums returns every hash so far.
func (h *Hasher) Sums() []Hash {
	out := make([]Hash, len(h.algos))
	for i, a := range h.algos {
		out[i] = Hash{Algo: a, Value: h.hs[i].Sum(nil)}
	}
	return out
}

// HashReader hashes everything r yields with the given algorithms (used to
// re-hash a received file for an algorithm that was not computed while
// streaming).
func HashReader(r io.Reader, algos ...string) ([]Hash, error) {
	h := NewHasher(algos...)
	if _, err := io.CopyBuffer(h, r, make([]byte, 64<<10)); err != nil {
		return nil, err
	}
	return h.Sums(), nil
}

// Verification is the outcome of comparing computed hashes with the ones a
// peer announced.
type Verification struct {
	// Verified is true when at least one strong (not sha-1) hash matched
	// and none mismatched.
	Verified bool
	// Matched lists the algorithms that matched.
	Matched []string
	// Missing lists the algorithms the peer sent that we did not compute
	// (unsupported, or not computed while streaming).
	Missing []string
	// Note explains an unverified outcome ("peer sent no hash", "only
	// sha-1 offered", ...), empty when Verified.
	Note string
}

// Verify compares want (what the peer sent; empty values are ignored) with
// got (what we computed). Any mismatch is ErrHashMismatch: every supported
// algorithm the peer sent is checked, sha-1 included, since any mismatch is
// evidence of corruption. A file counts as verified only when a strong hash
// matched: sha-1 is accepted only alongside a stronger one (Conversations
// sends sha-1 and sha-256).
func Verify(got, want []Hash) (Verification, error) {
	var v Verification
	sent := 0
	for _, w := range want {
		if len(w.Value) == 0 {
			continue
		}
		sent++
		g, ok := findHash(got, w.Algo)
		if !ok {
			if !slices.Contains(v.Missing, w.Algo) {
				v.Missing = append(v.Missing, w.Algo)
			}
			continue
		}
		if !bytes.Equal(g.Value, w.Value) {
			return v, fmt.Errorf("%s: got %s, peer sent %s: %w", w.Algo, g.Base64(), w.Base64(), ErrHashMismatch)
		}
		if !slices.Contains(v.Matched, w.Algo) {
			v.Matched = append(v.Matched, w.Algo)
		}
	}
	for _, a := range v.Matched {
		if !weak(a) {
			v.Verified = true
		}
	}
	switch {
	case v.Verified:
	case sent == 0:
		v.Note = "peer sent no hash"
	case len(v.Matched) > 0:
		v.Note = "only " + strings.Join(v.Matched, ", ") + " offered (too weak to verify)"
	default:
		v.Note = "peer sent only unsupported hash algorithms: " + strings.Join(v.Missing, ", ")
	}
	return v, nil
}

func findHash(hs []Hash, algo string) (Hash, bool) {
	for _, h := range hs {
		if h.Algo == algo {
			return h, true
		}
	}
	return Hash{}, false
}

// strongest returns the strongest supported algorithm among algos.
func strongest(algos []string) (string, bool) {
	for _, s := range strength {
		if slices.Contains(algos, s) {
			return s, true
		}
	}
	return "", false
}
