package ibb

import (
	"context"
	"testing"
	"time"

	"github.com/xjingle/xjingle/jingle"
)

// sessionApp hands incoming sessions to the test.
type sessionApp struct{ got chan *jingle.Session }

func (a *sessionApp) Namespace() string { return "urn:example:test" }
func (a *sessionApp) HandleSession(ctx context.Context, s *jingle.Session) {
	select {
	case a.got <- s:
	case <-ctx.Done():
	}
}

func managers(t *testing.T, e *env) (ma, mb *jingle.Manager, app *sessionApp) {
	t.Helper()
	app = &sessionApp{got: make(chan *jingle.Session, 1)}
	var err error
	ma, err = jingle.NewManager(e.sa, jingle.WithApplication(&sessionApp{got: make(chan *jingle.Session, 1)}), jingle.WithTransport(e.ha.JingleTransport()))
	if err != nil {
		t.Fatal(err)
	}
	mb, err = jingle.NewManager(e.sb, jingle.WithApplication(app), jingle.WithTransport(e.hb.JingleTransport()))
	if err != nil {
		t.Fatal(err)
	}
	return ma, mb, app
}

// A whole XEP-0261 session through jingle.Manager, then a transport-replace
// sent by the responder (the initiator still opens).
func TestWithManager(t *testing.T) {
	for _, replace := range []bool{false, true} {
		name := "session"
		if replace {
			name = "replace-by-responder"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnvSplit(t, []Option{WithBlockSize(65535)}, []Option{WithBlockSize(8192)})
			defer e.close()
			ma, mb, app := managers(t, e)
			defer ma.Close()
			defer mb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			desc, _ := jingle.ParseElement([]byte(`<description xmlns='urn:example:test'/>`))
			s, err := ma.Initiate(ctx, e.sb.LocalJID(), jingle.ContentSpec{Name: "f", Description: desc, Transport: NSJingle})
			if err != nil {
				t.Fatal(err)
			}
			in := <-app.got
			if err := in.Accept(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.WaitActive(ctx); err != nil {
				t.Fatal(err)
			}
			if replace {
				if err := in.ReplaceTransport(ctx, "f", NSJingle); err != nil {
					t.Fatalf("transport-replace: %v", err)
				}
			}
			ca, err := s.Content("f").Conn(ctx)
			if err != nil {
				t.Fatalf("initiator Conn: %v", err)
			}
			cb, err := in.Content("f").Conn(ctx)
			if err != nil {
				t.Fatalf("responder Conn: %v", err)
			}
			if bs := ca.(*Conn).BlockSize(); bs != 8192 {
				t.Fatalf("block size %d, want the responder's 8192", bs)
			}
			transfer(t, ca, cb, 300000)
			s.Terminate(ctx, jingle.Reason{Condition: "success"})
		})
	}
}
