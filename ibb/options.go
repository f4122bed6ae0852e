package ibb

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults.
const (
	// DefaultWindow is how many <data/> IQs a Conn keeps in flight
	// (unacknowledged). Pipelining matters through a server: one block per
	// round trip caps throughput at blockSize/RTT.
	DefaultWindow = 8
	// MaxWindow is the largest window WithWindow accepts.
	MaxWindow = 16
	// DefaultReadBuffer is how many received bytes a Conn buffers before it
	// delays acknowledgements.
	DefaultReadBuffer = 512 << 10
	// DefaultCloseTimeout bounds the <close/> handshake in Conn.Close.
	DefaultCloseTimeout = 10 * time.Second
)

// Option configures a Handler (NewHandler). Options apply at construction
// only.
type Option func(*config) error

type config struct {
	blockSize    int
	window       int
	readBuffer   int
	closeTimeout time.Duration
	logger       *slog.Logger
	initialSeq   uint16 // test hook: first seq in both directions
}

func defaultConfig() config {
	return config{
		blockSize:    DefaultBlockSize,
		window:       DefaultWindow,
		readBuffer:   DefaultReadBuffer,
		closeTimeout: DefaultCloseTimeout,
		logger:       slog.New(slog.DiscardHandler),
	}
}

// WithBlockSize sets the block size Open and the Jingle transport offer
// (1..65535, default DefaultBlockSize) and the largest block size accepted in
// a peer's <open/> or Jingle offer: larger offers are clamped in our answer,
// larger opens are refused with <resource-constraint/> (XEP-0047 §2.1).
// Some servers limit stanza size: a block is sent base64-encoded (4/3 of its
// size) plus ~150 bytes of XML.
func WithBlockSize(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxBlockSize {
			return fmt.Errorf("ibb: block size %d out of range 1..%d", n, MaxBlockSize)
		}
		c.blockSize = n
		return nil
	}
}

// WithWindow sets how many <data/> IQs a Conn keeps in flight (1..MaxWindow,
// default DefaultWindow). Pipelining needs a Signaller that implements
// jingle.AsyncIQSender; with any other Signaller the window is 1, because
// concurrent SendIQ calls could reorder blocks on the wire.
func WithWindow(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxWindow {
			return fmt.Errorf("ibb: window %d out of range 1..%d", n, MaxWindow)
		}
		c.window = n
		return nil
	}
}

// WithReadBuffer sets how many received bytes a Conn buffers before it stops
// acknowledging <data/> (the sender then stalls on its window; default
// DefaultReadBuffer, at least 1). A peer that sends more than this plus
// MaxWindow blocks without waiting for acks overruns the buffer: the stream
// is closed with <resource-constraint/>.
func WithReadBuffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("ibb: read buffer %d must be positive", n)
		}
		c.readBuffer = n
		return nil
	}
}

// WithCloseTimeout bounds how long Conn.Close waits for the peer to
// acknowledge <close/> (default DefaultCloseTimeout).
func WithCloseTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("ibb: close timeout %v must be positive", d)
		}
		c.closeTimeout = d
		return nil
	}
}

// WithLogger sets the logger (nil: discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l != nil {
			c.logger = l
		}
		return nil
	}
}

// withInitialSeq makes streams start at seq n instead of 0 in both
// directions (tests of the 65535→0 wrap, XEP-0047 §2.2).
func withInitialSeq(n uint16) Option {
	return func(c *config) error { c.initialSeq = n; return nil }
}
