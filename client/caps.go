package client

import (
	"cmp"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"
)

// Identity is a disco#info identity (XEP-0030 §3.1).
type Identity struct {
	Category string `xml:"category,attr" json:"category"`
	Type     string `xml:"type,attr" json:"type"`
	Name     string `xml:"name,attr,omitempty" json:"name,omitempty"`
	Lang     string `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty" json:"lang,omitempty"`
}

// capsVer computes the XEP-0115 §5.1 verification string (sha-1) of a
// disco#info answer without data forms. Answers with forms (XEP-0128) hash
// differently; callers must not cache those (see PeerFeatures), so that a
// mismatch never poisons the cache.
func capsVer(ids []Identity, features []string) string {
	// §5.1 step 2: sort by category, then type, then xml:lang ("i;octet",
	// i.e. byte order, per field: sorting the joined strings would put
	// "a-b/…" before "a/…"). Name breaks remaining ties so that the order
	// is total.
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b Identity) int {
		return cmp.Or(strings.Compare(a.Category, b.Category), strings.Compare(a.Type, b.Type),
			strings.Compare(a.Lang, b.Lang), strings.Compare(a.Name, b.Name))
	})
	fs := slices.Clone(features)
	slices.Sort(fs)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name)
		b.WriteByte('<')
	}
	for _, f := range fs {
		b.WriteString(f)
		b.WriteByte('<')
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// capsWellFormed reports whether a disco#info answer may be checked against
// a caps hash at all: XEP-0115 §5.4 step 3.3 and 3.4 call an answer with a
// repeated identity or feature ill-formed.
func capsWellFormed(ids []Identity, features []string) bool {
	seenID := make(map[Identity]bool, len(ids))
	for _, id := range ids {
		if seenID[id] {
			return false
		}
		seenID[id] = true
	}
	seenF := make(map[string]bool, len(features))
	for _, f := range features {
		if seenF[f] {
			return false
		}
		seenF[f] = true
	}
	return true
}
