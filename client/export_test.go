package client

import (
	"encoding/xml"
	"slices"
	"sync"

	"github.com/xjingle/xjingle/jingle"
)

// RecordIQs wraps the IQ handler registered on c for name with a recorder
// (for tests in package client_test) and returns a function that lists the
// payloads it saw so far.
func RecordIQs(c *Client, name xml.Name) func() [][]byte {
	var (
		mu   sync.Mutex
		seen [][]byte
	)
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.iqs[name]
	if h == nil {
		panic("RecordIQs: no handler for " + name.Space + " " + name.Local)
	}
	c.iqs[name] = func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		mu.Lock()
		seen = append(seen, iq.Payload)
		mu.Unlock()
		h(iq, reply)
	}
	return func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// CapsVer is our current XEP-0115 verification string.
func CapsVer(c *Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ver
}
