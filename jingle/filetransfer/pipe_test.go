package filetransfer

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"sync"

	"github.com/xjingle/xjingle/jingle"
)

// nsPipe is the namespace of the in-memory test transport.
const nsPipe = "urn:xjingle:test:pipe"

// pipeHub is an in-memory Jingle transport for tests: both sides of a
// content get the two ends of one net.Pipe, found by (initiator, sid,
// content).
type pipeHub struct {
	mu    sync.Mutex
	pipes map[string]*[2]net.Conn
	// cutAfter, if positive, makes the next pipe's initiator end fail
	// (and close) after writing that many bytes; it is consumed.
	cutAfter int64
}

func newPipeHub() *pipeHub { return &pipeHub{pipes: map[string]*[2]net.Conn{}} }

func (h *pipeHub) Namespace() string { return nsPipe }

func (h *pipeHub) NewTransport(l jingle.TransportLink) (jingle.Transport, error) {
	end := 0
	if l.Role() == jingle.RoleResponder {
		end = 1
	}
	return &pipeTransport{hub: h, key: l.Initiator().String() + "/" + l.SID() + "/" + l.ContentName(), end: end}, nil
}

func (h *pipeHub) pair(key string) *[2]net.Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pipes[key]
	if p == nil {
		a, b := net.Pipe()
		if h.cutAfter > 0 {
			a = &cutConn{Conn: a, left: h.cutAfter}
			h.cutAfter = 0
		}
		p = &[2]net.Conn{a, b}
		h.pipes[key] = p
	}
	return p
}

type pipeTransport struct {
	hub *pipeHub
	key string
	end int
}

func (t *pipeTransport) el() jingle.Element {
	return jingle.Element{XMLName: xml.Name{Space: nsPipe, Local: "transport"}}
}

func (t *pipeTransport) Offer(context.Context) (jingle.Element, error) { return t.el(), nil }
func (t *pipeTransport) Accept(context.Context, jingle.Element) (jingle.Element, error) {
	return t.el(), nil
}
func (t *pipeTransport) Accepted(context.Context, jingle.Element) error { return nil }
func (t *pipeTransport) Info(context.Context, jingle.Element) error     { return nil }
func (t *pipeTransport) Conn(context.Context) (net.Conn, error)         { return t.hub.pair(t.key)[t.end], nil }
func (t *pipeTransport) Close() error                                   { return t.hub.pair(t.key)[t.end].Close() }

// errCut is the error of a cutConn once its budget is spent.
var errCut = errors.New("pipe: cut")

// cutConn writes at most left bytes, then closes and fails.
type cutConn struct {
	net.Conn
	mu   sync.Mutex
	left int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if int64(len(p)) <= c.left {
		n, err := c.Conn.Write(p)
		c.left -= int64(n)
		return n, err
	}
	n, err := c.Conn.Write(p[:c.left])
	c.left -= int64(n)
	c.Conn.Close()
	if err == nil {
		err = errCut
	}
	return n, err
}
