package ice

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/xjingle/xjingle/jingle"
)

// XEP-0343 v0.3.1 Example 1 (transport only), with XEP-0176 candidates.
const xep0343Example1 = `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1'
                 pwd='asd88fgpdd777uzjYhagZg'
                 ufrag='8hhy'>
        <sctpmap xmlns='urn:xmpp:jingle:transports:dtls-sctp:1' number='5000' protocol='webrtc-datachannel' streams='1024'/>
        <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>
            02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2
        </fingerprint>
        <candidate component='1' foundation='1' generation='0' id='el0747fg11' ip='10.0.1.1' network='1' port='8998' priority='2130706431' protocol='udp' type='host'/>
        <candidate component='1' foundation='2' generation='0' id='y3s2b30v3r' ip='192.0.2.3' network='1' port='45664' priority='1694498815' protocol='udp' rel-addr='10.0.1.1' rel-port='8998' type='srflx'/>
      </transport>`

// The Conversations form: a data channel transport around ICE-UDP.
const conversationsOffer = `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1' sctp-port='5000' max-message-size='262144'>
  <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='Qx3d' pwd='0b3e6c1f4a2d9e8b7c6a5f4e'>
    <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>26:D6:81:8F:3C:E2:21:49:19:CA:A0:3D:8C:F9:E7:F1:69:7D:08:95:BF:FC:F8:2E:B1:07:B1:E1:A6:78:A8:4A</fingerprint>
    <candidate component='1' foundation='3251528275' generation='0' id='a1' ip='192.0.2.7' network='0' port='60431' priority='2122260223' protocol='udp' type='host'/>
  </transport>
</transport>`

func mustParse(t testing.TB, raw string) jingle.Element {
	t.Helper()
	el, err := jingle.ParseElement([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestXEP0343Example(t *testing.T) {
	tr, err := ParseICEUDP(mustParse(t, xep0343Example1))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Ufrag != "8hhy" || tr.Pwd != "asd88fgpdd777uzjYhagZg" || tr.SCTPMap == nil || tr.SCTPMap.Number != 5000 || tr.SCTPMap.Streams != 1024 {
		t.Fatalf("transport %+v sctpmap %+v", tr, tr.SCTPMap)
	}
	if fp := tr.Fingerprint; fp == nil || fp.Setup != "actpass" || !strings.HasPrefix(fp.Value, "02:1A:") || strings.ContainsAny(fp.Value, " \n") {
		t.Fatalf("fingerprint %+v", tr.Fingerprint)
	}
	want := Candidate{Component: 1, Foundation: "2", ID: "y3s2b30v3r", IP: "192.0.2.3", Network: 1, Port: 45664, Priority: 1694498815, Protocol: "udp", Type: "srflx", RelAddr: "10.0.1.1", RelPort: 8998}
	if len(tr.Candidates) != 2 || tr.Candidates[1] != want {
		t.Fatalf("candidates %+v", tr.Candidates)
	}
	roundTrip(t, tr)
}

// roundTrip checks XML → model → XML → model and model → SDP → model.
func roundTrip(t *testing.T, tr *ICEUDP) {
	t.Helper()
	again, err := ParseICEUDP(tr.Element())
	if err != nil {
		t.Fatalf("reparse: %v\n%s", err, tr.Element().Bytes())
	}
	if !reflect.DeepEqual(tr, again) {
		t.Fatalf("XML round trip:\n%+v\n%+v", tr, again)
	}
	for _, c := range tr.Candidates {
		back, err := CandidateFromSDP(c.SDP())
		if err != nil {
			t.Fatalf("%s: %v", c.SDP(), err)
		}
		back.ID, back.Network = c.ID, c.Network // not in SDP
		if back != c {
			t.Fatalf("SDP round trip:\n%+v\n%+v", c, back)
		}
	}
	if tr.Fingerprint != nil && tr.Pwd != "" {
		s, err := remoteSDP(sessionParams{ice: *tr})
		if err != nil {
			t.Fatal(err)
		}
		var d sdp.SessionDescription
		if err := d.UnmarshalString(s); err != nil {
			t.Fatalf("remote SDP: %v\n%s", err, s)
		}
		p, err := localParams(s)
		if err != nil {
			t.Fatal(err)
		}
		if p.ice.Ufrag != tr.Ufrag || p.ice.Pwd != tr.Pwd || *p.ice.Fingerprint != *tr.Fingerprint || len(p.ice.Candidates) != len(tr.Candidates) {
			t.Fatalf("SDP mapping: %+v", p)
		}
	}
}

func TestConversationsForm(t *testing.T) {
	dc, err := ParseDataChannel(mustParse(t, conversationsOffer))
	if err != nil {
		t.Fatal(err)
	}
	if dc.SCTPPort != 5000 || dc.MaxMessageSize != 262144 || dc.ICE.Ufrag != "Qx3d" || dc.ICE.Fingerprint == nil || len(dc.ICE.Candidates) != 1 {
		t.Fatalf("%+v", dc)
	}
	again, err := ParseDataChannel(dc.Element())
	if err != nil || !reflect.DeepEqual(dc, again) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, dc, again)
	}
	roundTrip(t, &dc.ICE)
	if _, err := ParseDataChannel(mustParse(t, `<transport xmlns='urn:xmpp:jingle:transports:webrtc-datachannel:1'/>`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty data channel transport: %v", err)
	}
}

// captureTransports returns every ICE-UDP <transport/> in a capture file.
func captureTransports(t testing.TB, path string) []jingle.Element {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("capture: %v", err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var out []jingle.Element
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Space == NSICEUDP && s.Name.Local == "transport" {
			var el jingle.Element
			if err := d.DecodeElement(&el, &s); err != nil {
				t.Fatal(err)
			}
			out = append(out, el)
		}
	}
}

// TestStanzaJSCaptures: every ICE-UDP transport StanzaJS sent parses
// (candidates without id/generation/network, <gathering-complete/>, a relay
// candidate with rel-addr 0.0.0.0 and no rel-port) and round-trips.
func TestStanzaJSCaptures(t *testing.T) {
	els := captureTransports(t, "testdata/stanzajs-12.22.1.xml")
	if len(els) < 5 {
		t.Fatalf("%d transports in the capture", len(els))
	}
	var cands, eoc, sctp int
	for _, el := range els {
		tr, err := ParseICEUDP(el)
		if err != nil {
			t.Fatalf("%v\n%s", err, el.Bytes())
		}
		cands += len(tr.Candidates)
		if tr.GatheringComplete {
			eoc++
		}
		if tr.SCTPMap != nil {
			sctp++
		}
		roundTrip(t, tr)
		for _, c := range tr.Candidates {
			if _, err := c.pionInit(tr.Ufrag); err != nil {
				t.Fatalf("pion refuses %+v: %v", c, err)
			}
		}
	}
	if cands < 2 || eoc < 1 || sctp < 2 {
		t.Fatalf("candidates %d, gathering-complete %d, sctpmap %d", cands, eoc, sctp)
	}
}

func TestMalformed(t *testing.T) {
	base := `<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='8hhy' pwd='asd88fgpdd777uzjYhagZg'>%s</transport>`
	for name, inner := range map[string]string{
		"bad ip":         `<candidate component='1' foundation='1' ip='1.2.3' port='1' priority='1' protocol='udp' type='host'/>`,
		"no port":        `<candidate component='1' foundation='1' ip='1.2.3.4' priority='1' protocol='udp' type='host'/>`,
		"component 0":    `<candidate component='0' foundation='1' ip='1.2.3.4' port='1' priority='1' protocol='udp' type='host'/>`,
		"priority text":  `<candidate component='1' foundation='1' ip='1.2.3.4' port='1' priority='x' protocol='udp' type='host'/>`,
		"foundation sp":  `<candidate component='1' foundation='a b' ip='1.2.3.4' port='1' priority='1' protocol='udp' type='host'/>`,
		"protocol sctp":  `<candidate component='1' foundation='1' ip='1.2.3.4' port='1' priority='1' protocol='sctp' type='host'/>`,
		"rel-addr":       `<candidate component='1' foundation='1' ip='1.2.3.4' port='1' priority='1' protocol='udp' type='srflx' rel-addr='nope'/>`,
		"fp hash":        `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='md5' setup='actpass'>AA:BB</fingerprint>`,
		"fp setup":       `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='holdconn'>02:1A:CC:54:27:AB:EB:9C:53:3F:3E:4B:65:2E:7D:46:3F:54:42:CD:54:F1:7A:03:A2:7D:F9:B0:7F:46:19:B2</fingerprint>`,
		"fp value":       `<fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>zz</fingerprint>`,
		"sctpmap proto":  `<sctpmap xmlns='urn:xmpp:jingle:transports:dtls-sctp:1' number='5000' protocol='x'/>`,
		"sctpmap number": `<sctpmap xmlns='urn:xmpp:jingle:transports:dtls-sctp:1' number='70000' protocol='webrtc-datachannel'/>`,
	} {
		_, err := ParseICEUDP(mustParse(t, strings.Replace(base, "%s", inner, 1)))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	var many strings.Builder
	for range MaxCandidates + 1 {
		many.WriteString(`<candidate component='1' foundation='1' ip='1.2.3.4' port='1' priority='1' protocol='udp' type='host'/>`)
	}
	if _, err := ParseICEUDP(mustParse(t, strings.Replace(base, "%s", many.String(), 1))); !errors.Is(err, ErrTooManyCandidates) {
		t.Errorf("too many: %v", err)
	}
	// No fingerprint: never an unauthenticated channel.
	tr, err := ParseICEUDP(mustParse(t, strings.Replace(base, "%s", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remoteSDP(sessionParams{ice: *tr}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("no fingerprint: %v", err)
	}
}

// FuzzParse feeds the XML parsers and the Pion mapping: they never panic,
// and whatever they accept survives a round trip.
func FuzzParse(f *testing.F) {
	f.Add([]byte(xep0343Example1))
	f.Add([]byte(conversationsOffer))
	for _, el := range captureTransports(f, "testdata/stanzajs-12.22.1.xml") {
		f.Add(el.Bytes())
	}
	f.Fuzz(fuzzBody(f))
}

func fuzzBody(testing.TB) func(t *testing.T, raw []byte) {
	return func(t *testing.T, raw []byte) {
		el, err := jingle.ParseElement(raw)
		if err != nil {
			return
		}
		var tr *ICEUDP
		switch el.XMLName.Space {
		case NSICEUDP:
			tr, err = ParseICEUDP(el)
		case NSDataChannel:
			var dc *DataChannel
			dc, err = ParseDataChannel(el)
			if err == nil {
				if _, err := ParseDataChannel(dc.Element()); err != nil {
					t.Fatalf("reparse of our data channel element: %v", err)
				}
				tr = &dc.ICE
			}
		default:
			return
		}
		if err != nil {
			return
		}
		again, err := ParseICEUDP(tr.Element())
		if err != nil {
			t.Fatalf("reparse of our element: %v", err)
		}
		if !reflect.DeepEqual(tr, again) {
			t.Fatalf("round trip:\n%+v\n%+v", tr, again)
		}
		for _, c := range tr.Candidates {
			c.pionInit(tr.Ufrag) // may refuse, must not panic
			CandidateFromSDP(c.SDP())
		}
		if s, err := remoteSDP(sessionParams{ice: *tr}); err == nil {
			var d sdp.SessionDescription
			if err := d.UnmarshalString(s); err != nil {
				t.Fatalf("our SDP does not parse: %v\n%s", err, s)
			}
		}
	}
}
