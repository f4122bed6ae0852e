package engine_test

import (
	"testing"

	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/transports/ice"
)

// TestICENamespace: the ice rung speaks the form the peer advertises, and
// is skipped for peers without a data channel.
func TestICENamespace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features []string
		want     string
	}{
		{"conversations", []string{"urn:xmpp:jingle:1", ice.NSDataChannel, ice.NSICEUDP, ice.NSDTLS}, ice.NSDataChannel},
		{"xjingle", []string{ice.NSDataChannel, ice.NSICEUDP, ice.NSDTLS, ice.NSSCTP}, ice.NSDataChannel},
		// StanzaJS 12: ICE-UDP, dtls-sctp:1 and DTLS (its disco caps).
		{"stanzajs", []string{"urn:xmpp:jingle:1", "urn:xmpp:jingle:transports:ice:0", ice.NSICEUDP, ice.NSSCTP, ice.NSDTLS}, ice.NSICEUDP},
		// Dino 0.4 (captures): ICE-UDP and DTLS for calls, no data channel.
		{"dino", []string{"urn:xmpp:jingle:1", ice.NSICEUDP, ice.NSDTLS, "urn:xmpp:jingle:transports:s5b:1"}, ""},
		{"none", []string{"urn:xmpp:jingle:transports:ibb:1"}, ""},
	} {
		if got := engine.ICENamespace(tc.features); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRungNames(t *testing.T) {
	if got := engine.RungName(ice.NSICEUDP); got != "ice" {
		t.Errorf("RungName(ICE-UDP) = %q", got)
	}
	order, err := engine.ParseTransports(engine.DefaultTransports)
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 4 || engine.RungName(order[0]) != "inline" || order[1] != ice.NSDataChannel || engine.RungName(order[2]) != "socks5" || engine.RungName(order[3]) != "ibb" {
		t.Errorf("default ladder %v, want inline, ice, socks5, ibb", order)
	}
}
