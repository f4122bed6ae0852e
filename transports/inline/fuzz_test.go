package inline

import (
	"bytes"
	"testing"

	"github.com/xjingle/xjingle/jingle"
)

// FuzzParseData: the transport and BoB <data/> parser never panics, never
// returns more than max bytes, and what it accepts round-trips.
func FuzzParseData(f *testing.F) {
	f.Add([]byte(DataElement([]byte("some bytes")).Bytes()), int64(100))
	f.Add([]byte(DataElement(nil).Bytes()), int64(1))
	f.Add([]byte(`<transport xmlns='urn:xjingle:jingle:transports:bob:0'><data xmlns='urn:xmpp:bob' cid='sha1+8f35fef110ffc5df08d579a50083ff9308fb6242@bob.xmpp.org' max-age='86400' type='image/png'>
  iVBORw0KGgoAAAANSUhEUgAAAAoAAAAKCAYAAACNMs+9AAAABGdBTUEAALGP
</data></transport>`), int64(8192))
	f.Add([]byte(`<transport xmlns='urn:xjingle:jingle:transports:bob:0' max-size='8192'/>`), int64(8192))
	f.Add([]byte(`<transport xmlns='urn:xjingle:jingle:transports:bob:0'><data xmlns='urn:xmpp:bob' cid='x'/><data xmlns='urn:xmpp:bob' cid='y'/></transport>`), int64(4))
	f.Fuzz(func(t *testing.T, raw []byte, max int64) {
		if max < 1 || max > MaxStanzaSize {
			max = DefaultMaxSize
		}
		el, err := jingle.ParseElement(raw)
		if err != nil {
			return
		}
		if n, err := ParseMaxSize(el); err == nil {
			if n2, err := ParseMaxSize(offerElement(n)); err != nil || n2 != n {
				t.Fatalf("max-size round trip %d -> %d, %v", n, n2, err)
			}
		}
		b, err := ParseData(el, max)
		if err != nil {
			return
		}
		if int64(len(b)) > max {
			t.Fatalf("%d bytes for max %d", len(b), max)
		}
		el2, err := jingle.ParseElement(DataElement(b).Bytes())
		if err != nil {
			t.Fatal(err)
		}
		b2, err := ParseData(el2, max)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
