package testbed

import (
	"bytes"
	"strings"
	"testing"
)

const replySeed = `<?xml version='1.0'?><stream:stream xmlns='xmpp:prosody.im/admin' xml:lang='en' xmlns:stream='http://etherx.jabber.org/streams' id=''>`

func TestReadAdminReply(t *testing.T) {
	for _, tc := range []struct {
		in     string
		header bool
		want   adminReply
		ok     bool
	}{
		{replySeed + `<repl-output>line 1</repl-output><repl-output>2</repl-output><repl-result>OK: done</repl-result>`, true,
			adminReply{Output: []string{"line 1", "2"}, Result: "OK: done"}, true},
		{replySeed + `<repl-result type='error'>Error: User exists</repl-result>`, true,
			adminReply{Result: "Error: User exists", Err: true}, true},
		{`<repl-result>Result: 1</repl-result>`, false, adminReply{Result: "Result: 1"}, true},
		{replySeed + `<repl-output>no result</repl-output>`, true, adminReply{}, false},
		{replySeed + `</stream:stream>`, true, adminReply{}, false},
		{`<iq/>`, true, adminReply{}, false},
		{replySeed + `<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`, true, adminReply{}, false},
	} {
		got, err := readAdminReply(strings.NewReader(tc.in), tc.header)
		if (err == nil) != tc.ok {
			t.Errorf("readAdminReply(%q): err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (got.Result != tc.want.Result || got.Err != tc.want.Err || strings.Join(got.Output, "|") != strings.Join(tc.want.Output, "|")) {
			t.Errorf("readAdminReply(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// FuzzReadAdminReply: the admin-socket reader never panics, never reads
// past its bound, and a result it accepts is one the input contained.
func FuzzReadAdminReply(f *testing.F) {
	f.Add([]byte(replySeed+`<repl-output>x</repl-output><repl-result>OK</repl-result>`), true)
	f.Add([]byte(replySeed+`<repl-result type='error'>Error: &lt;x&gt;</repl-result>`), true)
	f.Add([]byte(`<repl-result/>`), false)
	f.Add([]byte(replySeed+`<repl-output><b>nested</b></repl-output>`), true)
	f.Fuzz(func(t *testing.T, data []byte, header bool) {
		r := bytes.NewReader(data)
		rep, err := readAdminReply(r, header)
		if read := int64(len(data)) - int64(r.Len()); read > maxAdminReply {
			t.Fatalf("read %d bytes, bound is %d", read, maxAdminReply)
		}
		if err == nil && !bytes.Contains(data, []byte("repl-result")) {
			t.Fatalf("accepted a reply without repl-result: %+v", rep)
		}
	})
}
