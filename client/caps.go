package client

import (
	"crypto/sha1"
	"encoding/base64"
	"sort"
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
// differently; capsVer returns "" for them (form is true) so that a mismatch
// never poisons the cache.
func capsVer(ids []Identity, features []string) string {
	idStrs := make([]string, len(ids))
	for i, id := range ids {
		idStrs[i] = id.Category + "/" + id.Type + "/" + id.Lang + "/" + id.Name
	}
	sort.Strings(idStrs)
	fs := append([]string(nil), features...)
	sort.Strings(fs)
	var b strings.Builder
	for _, s := range idStrs {
		b.WriteString(s)
		b.WriteByte('<')
	}
	for _, f := range fs {
		b.WriteString(f)
		b.WriteByte('<')
	}
	sum := sha1.Sum([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}
