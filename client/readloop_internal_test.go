package client

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
)

// XEP-0115 §5.2: the simple generation example.
func TestCapsVerSimpleExample(t *testing.T) {
	ids := []Identity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}}
	features := []string{
		"http://jabber.org/protocol/muc",
		"http://jabber.org/protocol/disco#info",
		"http://jabber.org/protocol/caps",
		"http://jabber.org/protocol/disco#items",
	}
	const want = "QgayPKawpkPSDYmwT/WM94uAlu0="
	if got := capsVer(ids, features); got != want {
		t.Errorf("capsVer = %q, want %q", got, want)
	}
	// Order of the input must not matter, and the input is not modified.
	rev := []string{features[3], features[2], features[1], features[0]}
	if got := capsVer(ids, rev); got != want {
		t.Errorf("capsVer(reversed features) = %q, want %q", got, want)
	}
	if rev[0] != features[3] {
		t.Errorf("capsVer sorted its input in place")
	}
	// A different feature set hashes differently.
	if got := capsVer(ids, features[:3]); got == want {
		t.Errorf("capsVer with a feature less = %q, the same hash", got)
	}
}

// XEP-0115 §5.1 step 2: identities sort by category, then type, then
// xml:lang, field by field ("i;octet" on each field, not on the joined
// string).
func TestCapsVerIdentityOrder(t *testing.T) {
	// As strings, "a-b/x//" < "a/x//" ('-' < '/'), but by category "a" < "a-b".
	ids := []Identity{{Category: "a-b", Type: "x"}, {Category: "a", Type: "x"}}
	got := capsVer(ids, nil)
	s := "a/x//<a-b/x//<"
	if got != shaB64(s) {
		t.Errorf("capsVer = %q, want the hash of %q (%q)", got, s, shaB64(s))
	}
	// Lang takes part in the order and in the string.
	ids = []Identity{{Category: "client", Type: "pc", Lang: "en", Name: "Psi"}, {Category: "client", Type: "pc", Lang: "el", Name: "Ψ"}}
	s = "client/pc/el/Ψ<client/pc/en/Psi<"
	if got := capsVer(ids, nil); got != shaB64(s) {
		t.Errorf("capsVer(langs) = %q, want the hash of %q", got, s)
	}
}

func shaB64(s string) string {
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestCapsWellFormed(t *testing.T) {
	id := Identity{Category: "client", Type: "pc"}
	if !capsWellFormed([]Identity{id}, []string{"a", "b"}) {
		t.Error("distinct identities and features: not well-formed")
	}
	if capsWellFormed([]Identity{id, id}, []string{"a"}) {
		t.Error("duplicate identity: well-formed (XEP-0115 §5.4 3.3)")
	}
	if capsWellFormed([]Identity{id}, []string{"a", "b", "a"}) {
		t.Error("duplicate feature: well-formed (XEP-0115 §5.4 3.4)")
	}
}

func TestAnswerFrom(t *testing.T) {
	c := &Client{local: jid.MustParse("alice@example.com/res")}
	var (
		none     = jid.JID{}
		ownBare  = jid.MustParse("alice@example.com")
		ownFull  = jid.MustParse("alice@example.com/res")
		domain   = jid.MustParse("example.com")
		bob      = jid.MustParse("bob@example.com")
		bobFull  = jid.MustParse("bob@example.com/phone")
		bobOther = jid.MustParse("bob@example.com/laptop")
		eve      = jid.MustParse("eve@example.com/x")
		proxy    = jid.MustParse("proxy.example.com")
	)
	for _, tc := range []struct {
		to, from jid.JID
		ok       bool
	}{
		// The addressee itself.
		{bobFull, bobFull, true},
		{bob, bob, true},
		{proxy, proxy, true},
		{domain, domain, true},
		{ownFull, ownFull, true},
		// Case differences are normalised by jid.Parse.
		{bobFull, jid.MustParse("Bob@EXAMPLE.com/phone"), true},
		// Our own account answers via the server (RFC 6120 §8.1.2.1, §10.3.3).
		{none, none, true},
		{none, ownBare, true},
		{none, domain, true},
		{ownBare, none, true},
		{ownBare, ownBare, true},
		{ownBare, domain, true},
		// Servers answering a domain IQ without from.
		{domain, none, true},
		// Anybody else is a spoof.
		{bobFull, eve, false},
		{bobFull, bobOther, false},
		{bobFull, bob, false},
		{bobFull, none, false},
		{bobFull, domain, false},
		{bob, none, false},
		{bob, eve, false},
		{proxy, none, false},
		{proxy, domain, false},
		{none, eve, false},
		{none, bob, false},
		{ownBare, eve, false},
		{domain, eve, false},
	} {
		if got := c.answerFrom(tc.to, tc.from); got != tc.ok {
			t.Errorf("answerFrom(to %q, from %q) = %v, want %v", tc.to, tc.from, got, tc.ok)
		}
	}
}

// decodeStanza reads the first stanza of a `<stream>` wrapper as the read
// loop would.
func decodeStanza(t testing.TB, s string) (*stanza, error) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">` + s + `</stream>`))
	if _, err := d.Token(); err != nil { // <stream>
		t.Fatalf("stream start: %v", err)
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return readStanza(d, se)
		}
	}
}

// parseRaw parses raw XML of one element into a generic tree, so that tests
// compare names (with namespaces) and attributes instead of spelling.
type node struct {
	Name     xml.Name
	Attrs    map[xml.Name]string
	Text     string
	Children []*node
}

func parseRaw(t testing.TB, raw []byte) *node {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(raw))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("re-parse %s: %v", raw, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tk.Name, Attrs: map[xml.Name]string{}}
			for _, a := range tk.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				n.Attrs[a.Name] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else if root == nil {
				root = n
			} else {
				t.Fatalf("raw %s has two roots", raw)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tk)
			}
		}
	}
	if root == nil {
		t.Fatalf("raw %q has no element", raw)
	}
	return root
}

func TestReadStanzaAttributes(t *testing.T) {
	st, err := decodeStanza(t, `<iq type='get' id='a&amp;b' from='bob@example.com/x' to='alice@example.com/y' xml:lang='en'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	if st.kind != "iq" || st.typ != "get" || st.id != "a&b" {
		t.Errorf("kind %q type %q id %q", st.kind, st.typ, st.id)
	}
	if st.from.String() != "bob@example.com/x" || st.to.String() != "alice@example.com/y" {
		t.Errorf("from %q to %q", st.from, st.to)
	}
	if len(st.children) != 1 || st.children[0].name != (xml.Name{Space: "urn:xmpp:ping", Local: "ping"}) {
		t.Fatalf("children %+v", st.children)
	}
	// An invalid from does not fail the stanza; it reads as empty.
	st, err = decodeStanza(t, `<message from='@@bad' type='chat'><body>hi</body></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if !st.from.Equal(jid.JID{}) || st.kind != "message" {
		t.Errorf("from %q kind %q", st.from, st.kind)
	}
}

func TestReadStanzaSkipsUnknown(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns="jabber:client"><r xmlns="urn:xmpp:sm:3"><deep><er/></deep></r><iq id="1" type="result"/></stream>`))
	d.Token()
	tok, _ := d.Token()
	st, err := readStanza(d, tok.(xml.StartElement))
	if st != nil || err != nil {
		t.Fatalf("unknown element: %v, %v; want nil, nil", st, err)
	}
	tok, _ = d.Token()
	st, err = readStanza(d, tok.(xml.StartElement))
	if err != nil || st == nil || st.id != "1" || len(st.children) != 0 {
		t.Fatalf("after skip: %+v, %v", st, err)
	}
}

func TestReadStanzaPrefixedNamespaces(t *testing.T) {
	st, err := decodeStanza(t, `<iq type='set' id='1'>`+
		`<j:jingle xmlns:j='urn:xmpp:jingle:1' xmlns:t='urn:xmpp:jingle:transports:ibb:1' action='session-initiate' sid='s1'>`+
		`<j:content name='c' creator='initiator'><t:transport sid='t1' block-size='4096'/><desc/></j:content>`+
		`</j:jingle></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.children) != 1 {
		t.Fatalf("%d children", len(st.children))
	}
	ch := st.children[0]
	if ch.name != (xml.Name{Space: "urn:xmpp:jingle:1", Local: "jingle"}) {
		t.Errorf("child name %v", ch.name)
	}
	if ch.attr("sid") != "s1" || ch.attr("action") != "session-initiate" {
		t.Errorf("attrs %v", ch.attrs)
	}
	n := parseRaw(t, ch.raw)
	if n.Name.Space != "urn:xmpp:jingle:1" || len(n.Children) != 1 {
		t.Fatalf("raw %s", ch.raw)
	}
	content := n.Children[0]
	if content.Name != (xml.Name{Space: "urn:xmpp:jingle:1", Local: "content"}) || content.Attrs[xml.Name{Local: "name"}] != "c" {
		t.Errorf("content %+v in %s", content, ch.raw)
	}
	if len(content.Children) != 2 {
		t.Fatalf("content children in %s", ch.raw)
	}
	if tr := content.Children[0]; tr.Name != (xml.Name{Space: "urn:xmpp:jingle:transports:ibb:1", Local: "transport"}) || tr.Attrs[xml.Name{Local: "block-size"}] != "4096" {
		t.Errorf("transport %+v in %s", tr, ch.raw)
	}
	// <desc/> has no prefix: it is in the default namespace of the stream,
	// jabber:client, not in the jingle namespace of its prefixed parent.
	if desc := content.Children[1]; desc.Name != (xml.Name{Space: "jabber:client", Local: "desc"}) {
		t.Errorf("desc %v in %s", desc.Name, ch.raw)
	}
	// Unmarshalling the raw child as a handler would works.
	var j struct {
		XMLName xml.Name `xml:"urn:xmpp:jingle:1 jingle"`
		SID     string   `xml:"sid,attr"`
		Content struct {
			Transport struct {
				SID string `xml:"sid,attr"`
			} `xml:"urn:xmpp:jingle:transports:ibb:1 transport"`
		} `xml:"urn:xmpp:jingle:1 content"`
	}
	if err := xml.Unmarshal(ch.raw, &j); err != nil || j.SID != "s1" || j.Content.Transport.SID != "t1" {
		t.Errorf("unmarshal raw: %v, %+v", err, j)
	}
}

func TestReadStanzaPrefixedAttribute(t *testing.T) {
	st, err := decodeStanza(t, `<message><x xmlns='urn:x' xmlns:e='urn:ext' e:flag='on' xml:lang='de'>Grüß &lt;dich&gt;</x></message>`)
	if err != nil {
		t.Fatal(err)
	}
	n := parseRaw(t, st.children[0].raw)
	if got := n.Attrs[xml.Name{Space: "urn:ext", Local: "flag"}]; got != "on" {
		t.Errorf("prefixed attribute = %q in %s", got, st.children[0].raw)
	}
	if got := n.Attrs[xml.Name{Space: "http://www.w3.org/XML/1998/namespace", Local: "lang"}]; got != "de" {
		t.Errorf("xml:lang = %q in %s", got, st.children[0].raw)
	}
	if n.Text != "Grüß <dich>" {
		t.Errorf("text %q", n.Text)
	}
}

func TestReadStanzaXMLLangOnIdentity(t *testing.T) {
	st, err := decodeStanza(t, `<iq type='result' id='d'><query xmlns='http://jabber.org/protocol/disco#info'>`+
		`<identity category='client' type='pc' xml:lang='en' name='Psi'/><feature var='urn:a'/></query></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	var q discoInfoXML
	if err := xml.Unmarshal(st.children[0].raw, &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Identities) != 1 || q.Identities[0].Lang != "en" || q.Identities[0].Name != "Psi" {
		t.Errorf("identities %+v from %s", q.Identities, st.children[0].raw)
	}
}

func TestReadStanzaDefaultNamespaceInheritance(t *testing.T) {
	st, err := decodeStanza(t, `<iq type='result' id='1'><query xmlns='urn:q'><item jid='a'><sub xmlns='urn:s'><leaf/></sub><leaf/></item></query></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	n := parseRaw(t, st.children[0].raw)
	item := n.Children[0]
	if item.Name.Space != "urn:q" || item.Attrs[xml.Name{Local: "jid"}] != "a" {
		t.Errorf("item %v", item.Name)
	}
	sub := item.Children[0]
	if sub.Name.Space != "urn:s" || sub.Children[0].Name.Space != "urn:s" {
		t.Errorf("sub %v, its leaf %v", sub.Name, sub.Children[0].Name)
	}
	if leaf := item.Children[1]; leaf.Name.Space != "urn:q" {
		t.Errorf("second leaf in %q, want urn:q (%s)", leaf.Name.Space, st.children[0].raw)
	}
}

// A child undeclaring the default namespace (xmlns="") stays in no
// namespace when its raw XML is parsed again, also nested in a namespaced
// parent.
func TestReadStanzaNoNamespace(t *testing.T) {
	st, err := decodeStanza(t, `<iq type='set' id='1'><query xmlns='urn:q'><item xmlns=''><deep/></item></query></iq>`)
	if err != nil {
		t.Fatal(err)
	}
	raw := st.children[0].raw
	n := parseRaw(t, raw)
	item := n.Children[0]
	if item.Name != (xml.Name{Local: "item"}) {
		t.Errorf("item name %v, want no namespace (raw %s)", item.Name, raw)
	}
	if deep := item.Children[0]; deep.Name != (xml.Name{Local: "deep"}) {
		t.Errorf("deep name %v, want no namespace (raw %s)", deep.Name, raw)
	}

	// A stanza child in no namespace (a stream without a default namespace).
	d := xml.NewDecoder(strings.NewReader(`<stream><iq type='get' id='2'><ping/></iq></stream>`))
	d.Token()
	tok, _ := d.Token()
	st, err = readStanza(d, tok.(xml.StartElement))
	if err != nil {
		t.Fatal(err)
	}
	if st.children[0].name != (xml.Name{Local: "ping"}) {
		t.Errorf("name %v", st.children[0].name)
	}
	if n := parseRaw(t, st.children[0].raw); n.Name != (xml.Name{Local: "ping"}) {
		t.Errorf("re-parsed %v from %s", n.Name, st.children[0].raw)
	}
}

func TestReadStanzaDropsProcInst(t *testing.T) {
	st, err := decodeStanza(t, `<message><x xmlns='urn:x'><?pi data?><y/></x></message>`)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(st.children[0].raw, []byte("<?")) {
		t.Errorf("processing instruction kept: %s", st.children[0].raw)
	}
}

func TestReadStanzaOversize(t *testing.T) {
	big := strings.Repeat("A", 4096)
	var b strings.Builder
	b.WriteString(`<iq type='set' id='big'><data xmlns='http://jabber.org/protocol/ibb'>`)
	for b.Len() < maxStanza+8192 {
		b.WriteString(`<chunk>` + big + `</chunk>`)
	}
	b.WriteString(`</data></iq>`)
	_, err := decodeStanza(t, b.String())
	if err == nil {
		t.Fatal("a stanza over maxStanza was accepted")
	}
	if !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v", err)
	}

	// Many children each under the limit add up.
	b.Reset()
	b.WriteString(`<message>`)
	for b.Len() < maxStanza+8192 {
		b.WriteString(`<c xmlns='urn:c'>` + big + `</c>`)
	}
	b.WriteString(`</message>`)
	if _, err := decodeStanza(t, b.String()); err == nil {
		t.Fatal("a stanza of many children over maxStanza was accepted")
	}

	// Just under the limit passes (an IBB block of 64 KiB is ~88 KiB).
	b.Reset()
	b.WriteString(`<iq type='set' id='ok'><data xmlns='http://jabber.org/protocol/ibb' seq='0' sid='s'>`)
	b.WriteString(strings.Repeat("QUJD", 88*1024/4))
	b.WriteString(`</data></iq>`)
	st, err := decodeStanza(t, b.String())
	if err != nil {
		t.Fatalf("88 KiB stanza: %v", err)
	}
	if len(st.children[0].raw) < 88*1024 {
		t.Errorf("raw child is %d bytes", len(st.children[0].raw))
	}
}

func TestReadStanzaTruncated(t *testing.T) {
	d := xml.NewDecoder(strings.NewReader(`<stream><iq type='get' id='1'><ping xmlns='urn:xmpp:ping'>`))
	d.Token()
	tok, _ := d.Token()
	if _, err := readStanza(d, tok.(xml.StartElement)); err == nil {
		t.Fatal("truncated stanza accepted")
	} else if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Logf("err = %v", err)
	}
}

func FuzzReadStanza(f *testing.F) {
	for _, s := range []string{
		`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='set' id='1'><j:jingle xmlns:j='urn:xmpp:jingle:1'><j:content><t xmlns='urn:t'/></j:content></j:jingle></iq>`,
		`<message xml:lang='en'><body>hi &amp; bye</body><x xmlns='urn:x' xmlns:e='urn:e' e:a='1'/></message>`,
		`<presence from='a@b/c'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' ver='x' node='n'/></presence>`,
		`<iq><query xmlns='urn:q'><item xmlns=''><deep/></item></query></iq>`,
		`<iq><a><!-- c --><?pi x?><![CDATA[<x>]]></a></iq>`,
		`<unknown><x/></unknown>`,
		`<iq><a xmlns:xml='http://www.w3.org/XML/1998/namespace'/></iq>`,
		`<iq><a xmlns:x='urn:x'><b x:c='d' xmlns:x='urn:y'/></a></iq>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := xml.NewDecoder(io.MultiReader(strings.NewReader(`<stream xmlns="jabber:client">`), bytes.NewReader(data), strings.NewReader(`</stream>`)))
		if _, err := d.Token(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			tok, err := d.Token()
			if err != nil {
				return
			}
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			st, err := readStanza(d, se)
			if err != nil {
				return
			}
			if st == nil {
				continue
			}
			size := 0
			for _, ch := range st.children {
				size += len(ch.raw)
				// Every child must be well-formed XML with one root
				// of the name readStanza reported.
				cd := xml.NewDecoder(bytes.NewReader(ch.raw))
				var root xml.Name
				depth := 0
				for {
					tok, err := cd.Token()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatalf("child %s does not re-parse: %v", ch.raw, err)
					}
					switch tk := tok.(type) {
					case xml.StartElement:
						if depth == 0 {
							if root.Local != "" {
								t.Fatalf("child %s has two roots", ch.raw)
							}
							root = tk.Name
						}
						depth++
					case xml.EndElement:
						depth--
					}
				}
				if root != ch.name {
					t.Fatalf("child %s re-parses as %v, readStanza said %v", ch.raw, root, ch.name)
				}
			}
			if size > maxStanza+64*1024 {
				t.Fatalf("children total %d bytes", size)
			}
		}
	})
}
