package testbed

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Prosody's admin socket (mod_admin_socket + mod_admin_shell, 0.12) speaks a
// tiny XML stream in the namespace xmpp:prosody.im/admin over a Unix socket
// (util/adminstream.lua):
//
//	client: <stream:stream xmlns='xmpp:prosody.im/admin' ...>
//	server: <stream:stream ...>
//	client: <repl-input>LINE</repl-input>
//	server: <repl-output>TEXT</repl-output>   (zero or more, from print())
//	server: <repl-result [type='error']>TEXT</repl-result>
//
// A LINE starting with ">" is Lua run in the server's global environment; other
// lines are shell commands such as user:create(jid, password).

const (
	adminNS = "xmpp:prosody.im/admin"
	// maxAdminReply bounds what one command may send back.
	maxAdminReply = 1 << 20
)

// AdminError is a command that Prosody's admin shell answered with
// <repl-result type='error'/>.
type AdminError struct {
	Command string // the command, with secrets elided by the caller
	Message string // Prosody's text
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("testbed: prosody admin %s: %s", e.Command, e.Message)
}

// adminReply is the parsed answer to one repl-input.
type adminReply struct {
	Output []string // repl-output texts, in order
	Result string   // repl-result text
	Err    bool     // repl-result type='error'
}

var errAdminProtocol = errors.New("testbed: admin socket protocol error")

// readAdminReply reads the server's stream header (if header is true) and
// then elements until the first repl-result. It never reads more than
// maxAdminReply bytes.
func readAdminReply(r io.Reader, header bool) (adminReply, error) {
	var rep adminReply
	d := xml.NewDecoder(io.LimitReader(r, maxAdminReply))
	d.Strict = true
	sawHeader := !header
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return rep, fmt.Errorf("%w: %w", errAdminProtocol, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !sawHeader {
				if t.Name.Local != "stream" {
					return rep, fmt.Errorf("%w: want stream header, got <%s>", errAdminProtocol, t.Name.Local)
				}
				sawHeader = true
				continue
			}
			var el struct {
				Type string `xml:"type,attr"`
				Text string `xml:",chardata"`
			}
			if err := d.DecodeElement(&el, &t); err != nil {
				return rep, fmt.Errorf("%w: %w", errAdminProtocol, err)
			}
			switch t.Name.Local {
			case "repl-output":
				rep.Output = append(rep.Output, el.Text)
			case "repl-result":
				rep.Result = el.Text
				rep.Err = el.Type == "error"
				return rep, nil
			case "error": // stream:error
				return rep, fmt.Errorf("%w: stream error %s", errAdminProtocol, strings.TrimSpace(el.Text))
			}
		case xml.EndElement:
			return rep, fmt.Errorf("%w: stream closed", errAdminProtocol)
		}
	}
}

// admin runs one admin-shell line on the server listening on socket and
// returns the result text. label names the command in errors (so that
// passwords stay out of them).
func admin(ctx context.Context, socket, line, label string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", fmt.Errorf("testbed: prosody admin %s: %w", label, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var req bytes.Buffer
	req.WriteString(`<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='` + adminNS + `' version='1.0'><repl-input>`)
	if err := xml.EscapeText(&req, []byte(line)); err != nil {
		return "", fmt.Errorf("testbed: prosody admin %s: %w", label, err)
	}
	req.WriteString(`</repl-input>`)
	if _, err := c.Write(req.Bytes()); err != nil {
		return "", fmt.Errorf("testbed: prosody admin %s: %w", label, err)
	}
	rep, err := readAdminReply(c, true)
	_, _ = io.WriteString(c, "</stream:stream>")
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return "", fmt.Errorf("testbed: prosody admin %s: %w", label, err)
	}
	if rep.Err {
		return "", &AdminError{Command: label, Message: strings.TrimSpace(rep.Result)}
	}
	return rep.Result, nil
}
