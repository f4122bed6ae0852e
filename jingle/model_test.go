package jingle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

const specDir = "../../shared/specs"
const captureDir = "../../shared/captures"

// jingleElements returns the raw XML of every <jingle xmlns='urn:xmpp:jingle:1'/>
// element in an XML document.
func jingleElements(t testing.TB, doc []byte) [][]byte {
	t.Helper()
	var out [][]byte
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		off := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != NS || se.Name.Local != "jingle" {
			continue
		}
		if err := d.Skip(); err != nil {
			t.Fatalf("skip: %v", err)
		}
		raw := doc[off:d.InputOffset()]
		// The element may rely on an ancestor's default namespace.
		if !bytes.Contains(raw[:bytes.IndexByte(raw, '>')], []byte("xmlns=")) {
			raw = bytes.Replace(raw, []byte("<jingle"), []byte(`<jingle xmlns="`+NS+`"`), 1)
		}
		out = append(out, append([]byte(nil), raw...))
	}
}

// xepExamples returns the <jingle/> elements of the XEP-0166 examples.
func xepExamples(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(specDir, "xep-0166-jingle.txt"))
	if err != nil {
		t.Skipf("spec not available: %v", err)
	}
	var out [][]byte
	for _, block := range regexp.MustCompile("(?s)```\n(.*?)```").FindAllSubmatch(b, -1) {
		if !bytes.Contains(block[1], []byte("urn:xmpp:jingle:1")) || !bytes.HasPrefix(bytes.TrimSpace(block[1]), []byte("<iq")) {
			continue
		}
		out = append(out, jingleElements(t, block[1])...)
	}
	return out
}

func captureJingles(t testing.TB) map[string][][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(captureDir, "*.xml"))
	if len(files) == 0 {
		t.Skip("captures not available")
	}
	out := map[string][][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = jingleElements(t, b)
	}
	return out
}

func roundTrip(t testing.TB, raw []byte) *Jingle {
	t.Helper()
	j1, err := ParseJingle(raw)
	if err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	b, err := j1.Marshal()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	j2, err := ParseJingle(b)
	if err != nil {
		t.Fatalf("reparse %s: %v", b, err)
	}
	if !reflect.DeepEqual(normalize(j1), normalize(j2)) {
		t.Fatalf("round trip differs:\n in: %s\nout: %s\n%#v\n%#v", raw, b, j1, j2)
	}
	return j1
}

func TestRoundTripXEPExamples(t *testing.T) {
	ex := xepExamples(t)
	if len(ex) < 20 {
		t.Fatalf("found only %d examples", len(ex))
	}
	actions := map[Action]bool{}
	for _, raw := range ex {
		j := roundTrip(t, raw)
		actions[j.Action] = true
		if !j.Action.Valid() {
			t.Errorf("example with action %q", j.Action)
		}
	}
	for _, a := range []Action{ActionSessionInitiate, ActionSessionAccept, ActionSessionTerminate, ActionSessionInfo, ActionSecurityInfo} {
		if !actions[a] {
			t.Errorf("no example with %s", a)
		}
	}
}

func TestRoundTripCaptures(t *testing.T) {
	total := 0
	for file, els := range captureJingles(t) {
		if len(els) == 0 {
			t.Errorf("%s: no <jingle/>", file)
		}
		for _, raw := range els {
			roundTrip(t, raw)
			total++
		}
	}
	t.Logf("%d captured <jingle/> elements", total)
}

func TestParseStanzaJSInitiate(t *testing.T) {
	els := captureJingles(t)["stanzajs-12.22.1.xml"]
	if len(els) == 0 {
		t.Skip("no StanzaJS capture")
	}
	j := roundTrip(t, els[0])
	if j.Action != ActionSessionInitiate || j.Initiator != "" || j.SID != "c5342f3a-6865-4636-8980-902434894291" {
		t.Fatalf("header: %+v", j)
	}
	c := j.Contents[0]
	if c.Creator != "initiator" || c.Senders != "" || c.EffectiveSenders() != SendersBoth || c.Name != "0" {
		t.Errorf("content attrs: %+v", c)
	}
	if c.Description == nil || c.Description.Namespace() != "urn:xmpp:jingle:apps:file-transfer:5" {
		t.Errorf("description: %+v", c.Description)
	}
	if c.Transport == nil || c.Transport.Namespace() != "urn:xmpp:jingle:transports:ice-udp:1" || c.Transport.Attr("ufrag") != "S9I2" {
		t.Errorf("transport: %+v", c.Transport)
	}
	if len(j.Extra) != 1 || j.Extra[0].XMLName.Local != "group" {
		t.Errorf("extra: %+v", j.Extra)
	}
	// The RTP offer uses prefixed children (rtcpf:rtcp-fb): they must
	// survive a round trip and decode into the right namespace.
	var rtp *Jingle
	for _, raw := range els {
		if bytes.Contains(raw, []byte("rtcpf:rtcp-fb")) {
			rtp = roundTrip(t, raw)
			break
		}
	}
	if rtp == nil {
		t.Fatal("no RTP offer in capture")
	}
	var desc struct {
		PT []struct {
			Name string `xml:"name,attr"`
			FB   []struct {
				Type string `xml:"type,attr"`
			} `xml:"urn:xmpp:jingle:apps:rtp:rtcp-fb:0 rtcp-fb"`
		} `xml:"payload-type"`
	}
	if err := rtp.Contents[0].Description.Decode(&desc); err != nil {
		t.Fatal(err)
	}
	if len(desc.PT) == 0 || desc.PT[0].Name != "opus" || len(desc.PT[0].FB) != 1 || desc.PT[0].FB[0].Type != "transport-cc" {
		t.Errorf("decoded RTP description: %+v", desc)
	}
}

func TestParseDinoTerminateAndConversationsInitiator(t *testing.T) {
	els := captureJingles(t)["dino-0.4.2.xml"]
	var sawInitiatorAttr, sawReason bool
	for _, raw := range els {
		j := roundTrip(t, raw)
		if j.Initiator != "" {
			sawInitiatorAttr = true
		}
		if j.Action == ActionSessionTerminate && j.Reason != nil && j.Reason.Condition == ReasonSuccess {
			sawReason = true
		}
	}
	if !sawInitiatorAttr || !sawReason {
		t.Errorf("initiator attr seen %v, success reason seen %v", sawInitiatorAttr, sawReason)
	}
}

func TestReason(t *testing.T) {
	raw := `<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="s"><reason><alternative-session><sid> b84tkkwlmb48kgfb </sid></alternative-session><text>use the other one</text><x xmlns="urn:example:app" n="1"/></reason></jingle>`
	j := roundTrip(t, []byte(raw))
	r := j.Reason
	if r.Condition != ReasonAlternativeSession || r.AlternativeSID != "b84tkkwlmb48kgfb" || r.Text != "use the other one" || len(r.Extra) != 1 || r.Extra[0].Attr("n") != "1" {
		t.Fatalf("reason: %+v", r)
	}
	if got := r.String(); !strings.Contains(got, "b84tkkwlmb48kgfb") {
		t.Errorf("String: %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, raw := range []string{
		``,
		`<jingle xmlns="urn:xmpp:jingle:0" action="session-info" sid="a"/>`,
		`<other xmlns="urn:xmpp:jingle:1"/>`,
		`<jingle xmlns="urn:xmpp:jingle:1" sid="a"><content>`,
		`<jingle xmlns="urn:xmpp:jingle:1" sid="a">` + strings.Repeat(`<content name="x"/>`, MaxContents+1) + `</jingle>`,
	} {
		if _, err := ParseJingle([]byte(raw)); err == nil {
			t.Errorf("ParseJingle(%.60q) succeeded", raw)
		}
	}
	_, err := ParseJingle([]byte(`<jingle xmlns="urn:xmpp:jingle:1">` + strings.Repeat(`<x xmlns="y"/>`, 100) + `</jingle>`))
	if !errors.Is(err, errTooMany) {
		t.Errorf("too many extras: %v", err)
	}
}

func TestActionValid(t *testing.T) {
	if len(Actions) != 15 {
		t.Fatalf("%d actions", len(Actions))
	}
	for _, a := range Actions {
		if !a.Valid() {
			t.Errorf("%s not valid", a)
		}
	}
	if Action("session-dance").Valid() || Action("").Valid() {
		t.Error("bogus action valid")
	}
}

// normalize drops what a round trip may legitimately change: prefix
// declarations, which encoding/xml may add for namespaced attributes.
func normalize(j *Jingle) *Jingle {
	c := *j
	fix := func(e *Element) *Element {
		if e == nil {
			return nil
		}
		x := *e
		x.Attrs = nil
		for _, a := range e.Attrs {
			if a.Name.Space == "" && strings.HasPrefix(a.Name.Local, "xmlns:") {
				continue
			}
			if a.Name.Space == "xmlns" {
				continue
			}
			x.Attrs = append(x.Attrs, a)
		}
		if len(x.Attrs) == 0 {
			x.Attrs = nil
		}
		if len(x.Inner) == 0 {
			x.Inner = nil
		}
		return &x
	}
	fixAll := func(es []Element) []Element {
		var out []Element
		for i := range es {
			out = append(out, *fix(&es[i]))
		}
		return out
	}
	c.Extra = fixAll(j.Extra)
	c.Contents = nil
	for _, wc := range j.Contents {
		wc.Description, wc.Transport, wc.Security = fix(wc.Description), fix(wc.Transport), fix(wc.Security)
		wc.Extra = fixAll(wc.Extra)
		c.Contents = append(c.Contents, wc)
	}
	if j.Reason != nil {
		r := *j.Reason
		r.Extra = fixAll(r.Extra)
		c.Reason = &r
	}
	return &c
}

func FuzzJingle(f *testing.F) {
	for _, raw := range xepExamples(f) {
		f.Add(raw)
	}
	for _, els := range captureJingles(f) {
		for _, raw := range els {
			f.Add(raw)
		}
	}
	f.Add([]byte(`<jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="s"><reason><alternative-session><sid>x</sid></alternative-session><text>t</text></reason></jingle>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		j1, err := ParseJingle(raw)
		if err != nil {
			return
		}
		b, err := j1.Marshal()
		if err != nil {
			return // only names invalid for XML output (e.g. a prefix-only name) fail here
		}
		j2, err := ParseJingle(b)
		if err != nil {
			t.Fatalf("reparse failed: %v\n in: %q\nout: %q", err, raw, b)
		}
		if !reflect.DeepEqual(normalize(j1), normalize(j2)) {
			t.Fatalf("round trip differs:\n in: %q\nout: %q\n%#v\n%#v", raw, b, normalize(j1), normalize(j2))
		}
	})
}
