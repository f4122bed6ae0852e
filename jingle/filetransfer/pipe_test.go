package filetransfer

import (
	"context"
	"encoding/xml"
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
