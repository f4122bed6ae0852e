package socks5

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// RFC 1928 constants used by XEP-0065 (§10.2 maps the parameters).
const (
	version5 = 0x05

	methodNoAuth       = 0x00
	methodNoAcceptable = 0xff

	cmdConnect = 0x01

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// Reply codes (RFC 1928 §6).
const (
	ReplySucceeded               ReplyError = 0x00
	ReplyGeneralFailure          ReplyError = 0x01
	ReplyNotAllowed              ReplyError = 0x02
	ReplyNetworkUnreachable      ReplyError = 0x03
	ReplyHostUnreachable         ReplyError = 0x04
	ReplyConnectionRefused       ReplyError = 0x05
	ReplyTTLExpired              ReplyError = 0x06
	ReplyCommandNotSupported     ReplyError = 0x07
	ReplyAddressTypeNotSupported ReplyError = 0x08
)

// ReplyError is a non-zero REP field of a SOCKS5 reply (RFC 1928 §6): the
// server refused the request. ClientHandshake returns it wrapped in a
// *net.OpError.
type ReplyError byte

// Error implements error.
func (r ReplyError) Error() string {
	names := [...]string{"succeeded", "general SOCKS server failure", "connection not allowed by ruleset",
		"network unreachable", "host unreachable", "connection refused", "TTL expired",
		"command not supported", "address type not supported"}
	if int(r) < len(names) {
		return "socks5: " + names[r]
	}
	return "socks5: unknown reply code " + strconv.Itoa(int(r))
}

var (
	noDeadline   = time.Time{}
	aLongTimeAgo = time.Unix(1, 0)
)

// Errors of the wire protocol (wrapped with detail).
var (
	errVersion     = errors.New("socks5: unexpected protocol version")
	errNoMethod    = errors.New("socks5: no acceptable authentication method")
	errReserved    = errors.New("socks5: non-zero reserved field")
	errAddrType    = errors.New("socks5: unknown address type")
	errBadDstAddr  = errors.New("socks5: DST.ADDR is not a 40-digit lowercase hex SHA-1")
	errEmptyDomain = errors.New("socks5: empty domain name")
)

// bindCtx makes ctx govern c's I/O for the duration of a handshake, the way
// golang.org/x/net/internal/socks does: ctx's deadline becomes c's deadline,
// and cancelling ctx forces a deadline in the past so that a blocked Read or
// Write returns at once. The returned func restores "no deadline" and
// reports ctx.Err() if ctx ended during the handshake (nil otherwise).
func bindCtx(ctx context.Context, c net.Conn) (release func() error) {
	if deadline, ok := ctx.Deadline(); ok {
		c.SetDeadline(deadline)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	return func() error {
		if !stop() {
			// The AfterFunc started: wait until it set its deadline so
			// that it cannot land after ours.
			<-fired
			return ctx.Err()
		}
		c.SetDeadline(noDeadline)
		return nil
	}
}

// ValidDstAddr reports whether s has the form of a XEP-0065 DST.ADDR: the
// lowercase hex encoding of a SHA-1 (40 characters).
func ValidDstAddr(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ClientHandshake runs the client side of the XEP-0065 SOCKS5 handshake on c,
// an established connection to a streamhost (XEP-0065 §5.3.2, §6.3.2): it
// offers the no-authentication method only and sends CONNECT with ATYP 3,
// DST.ADDR dstaddr and DST.PORT 0. It returns nil once the streamhost
// answered "succeeded"; c then carries the bytestream.
//
// ctx bounds the handshake: its deadline is set on c and its cancellation
// interrupts blocked I/O (c's deadline is cleared again on return). Errors are
// *net.OpError; a refusal by the streamhost wraps a ReplyError. c is not
// closed on error: the caller owns it.
func ClientHandshake(ctx context.Context, c net.Conn, dstaddr string) error {
	if !ValidDstAddr(dstaddr) {
		return opError(c, fmt.Errorf("%w: %q", errBadDstAddr, dstaddr))
	}
	release := bindCtx(ctx, c)
	err := clientHandshake(c, dstaddr)
	if cerr := release(); cerr != nil {
		// ctx ended: its error says more than the forced i/o timeout.
		return opError(c, cerr)
	}
	if err != nil {
		return opError(c, err)
	}
	return nil
}

func clientHandshake(c net.Conn, dstaddr string) error {
	// Method selection (RFC 1928 §3). The request is not pipelined with
	// it: some streamhosts read the greeting with one read and would drop
	// what follows.
	if _, err := c.Write([]byte{version5, 1, methodNoAuth}); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:2]); err != nil {
		return err
	}
	if hdr[0] != version5 {
		return fmt.Errorf("%w %d", errVersion, hdr[0])
	}
	if hdr[1] != methodNoAuth {
		return errNoMethod
	}
	b := make([]byte, 0, 5+len(dstaddr)+2)
	b = append(b, version5, cmdConnect, 0, atypDomain, byte(len(dstaddr)))
	b = append(b, dstaddr...)
	b = append(b, 0, 0) // DST.PORT 0 (XEP-0065 §5.3.2 rule 2)
	if _, err := c.Write(b); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, hdr[:4]); err != nil {
		return err
	}
	if hdr[0] != version5 {
		return fmt.Errorf("%w %d", errVersion, hdr[0])
	}
	if hdr[1] != byte(ReplySucceeded) {
		return ReplyError(hdr[1])
	}
	if hdr[2] != 0 {
		return errReserved
	}
	// BND.ADDR and BND.PORT: XEP-0065 §5.3.2 says the streamhost echoes
	// DST.ADDR/DST.PORT; proxies differ, so read and ignore them.
	var n int
	switch hdr[3] {
	case atypIPv4:
		n = 4
	case atypIPv6:
		n = 16
	case atypDomain:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return err
		}
		n = int(l[0])
	default:
		return fmt.Errorf("%w %d", errAddrType, hdr[3])
	}
	var skip [255 + 2]byte
	if _, err := io.ReadFull(c, skip[:n+2]); err != nil {
		return err
	}
	return nil
}

func opError(c net.Conn, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "socks connect" {
		return err
	}
	return &net.OpError{Op: "socks connect", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// ContextDialer dials TCP connections; *net.Dialer and
// golang.org/x/net/proxy's dialers implement it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Dialer connects to streamhosts.
type Dialer struct {
	// Forward dials the TCP connection to the streamhost; nil means a
	// zero net.Dialer.
	Forward ContextDialer
}

// Dial connects to the streamhost at address ("host:port") and runs
// ClientHandshake with dstaddr. ctx bounds both steps. On success the
// returned conn carries the bytestream (for a proxy, once it is activated).
func (d *Dialer) Dial(ctx context.Context, address, dstaddr string) (net.Conn, error) {
	fw := d.Forward
	if fw == nil {
		fw = &net.Dialer{}
	}
	c, err := fw.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("socks5: dial %s: %w", address, err)
	}
	if err := ClientHandshake(ctx, c, dstaddr); err != nil {
		c.Close()
		return nil, fmt.Errorf("socks5: handshake with %s: %w", address, err)
	}
	return c, nil
}

// Request is a SOCKS5 request as a server reads it (RFC 1928 §4).
type Request struct {
	Cmd      byte
	AddrType byte
	// Addr is the DST.ADDR: the domain name for ATYP 3, the textual IP
	// address otherwise.
	Addr string
	Port uint16
}

// ReadGreeting reads the client's method-selection message (RFC 1928 §3)
// and reports whether it offers the no-authentication method. It reads at
// most 257 bytes.
func ReadGreeting(r io.Reader) (noAuth bool, err error) {
	var b [255]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return false, err
	}
	if b[0] != version5 {
		return false, fmt.Errorf("%w %d", errVersion, b[0])
	}
	n := int(b[1])
	if _, err := io.ReadFull(r, b[:n]); err != nil {
		return false, err
	}
	for _, m := range b[:n] {
		if m == methodNoAuth {
			return true, nil
		}
	}
	return false, nil
}

// ReadRequest reads a SOCKS5 request (RFC 1928 §4). It reads at most 262
// bytes and validates only the framing: the caller checks Cmd, AddrType and
// the address.
func ReadRequest(r io.Reader) (*Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != version5 {
		return nil, fmt.Errorf("%w %d", errVersion, hdr[0])
	}
	if hdr[2] != 0 {
		return nil, errReserved
	}
	req := &Request{Cmd: hdr[1], AddrType: hdr[3]}
	var buf [255 + 2]byte
	switch hdr[3] {
	case atypIPv4, atypIPv6:
		n := 4
		if hdr[3] == atypIPv6 {
			n = 16
		}
		if _, err := io.ReadFull(r, buf[:n+2]); err != nil {
			return nil, err
		}
		req.Addr = net.IP(buf[:n]).String()
		req.Port = uint16(buf[n])<<8 | uint16(buf[n+1])
	case atypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return nil, err
		}
		n := int(buf[0])
		if n == 0 {
			return nil, errEmptyDomain
		}
		if _, err := io.ReadFull(r, buf[:n+2]); err != nil {
			return nil, err
		}
		req.Addr = string(buf[:n])
		req.Port = uint16(buf[n])<<8 | uint16(buf[n+1])
	default:
		return nil, fmt.Errorf("%w %d", errAddrType, hdr[3])
	}
	return req, nil
}

// writeReply writes a reply whose BND.ADDR/BND.PORT echo the request's
// DST.ADDR/DST.PORT (XEP-0065 §5.3.2), or a zero IPv4 address when there is
// no domain name to echo.
func writeReply(w io.Writer, rep ReplyError, dstaddr string) error {
	b := make([]byte, 0, 7+len(dstaddr))
	b = append(b, version5, byte(rep), 0)
	if dstaddr != "" && len(dstaddr) <= 255 {
		b = append(b, atypDomain, byte(len(dstaddr)))
		b = append(b, dstaddr...)
	} else {
		b = append(b, atypIPv4, 0, 0, 0, 0)
	}
	b = append(b, 0, 0)
	_, err := w.Write(b)
	return err
}

// ServerHandshake runs the streamhost side of the XEP-0065 handshake on c,
// as a proxy (XEP-0065 §6) or a test double of one does: it accepts only
// the no-authentication method and a CONNECT with ATYP 3 and DST.PORT 0
// whose DST.ADDR accept approves (nil accepts any well-formed DST.ADDR), and
// returns that DST.ADDR once it answered "succeeded". ctx bounds the
// handshake like in ClientHandshake. c is not closed on error.
func ServerHandshake(ctx context.Context, c net.Conn, accept func(dstaddr string) bool) (string, error) {
	if accept == nil {
		accept = ValidDstAddr
	}
	release := bindCtx(ctx, c)
	da, err := serverHandshake(c, accept)
	if cerr := release(); cerr != nil {
		return "", fmt.Errorf("socks5: server handshake: %w", cerr)
	}
	return da, err
}

// serverHandshake runs the streamhost side on rw: it accepts only the
// no-authentication method and a CONNECT with ATYP 3 and DST.PORT 0 whose
// DST.ADDR accept approves. It answers "succeeded" only then; every other
// request gets a failure reply (when the framing allows one) and an error.
func serverHandshake(rw io.ReadWriter, accept func(dstaddr string) bool) (string, error) {
	ok, err := ReadGreeting(rw)
	if err != nil {
		return "", fmt.Errorf("socks5: read greeting: %w", err)
	}
	if !ok {
		rw.Write([]byte{version5, methodNoAcceptable})
		return "", errNoMethod
	}
	if _, err := rw.Write([]byte{version5, methodNoAuth}); err != nil {
		return "", fmt.Errorf("socks5: write method: %w", err)
	}
	req, err := ReadRequest(rw)
	if err != nil {
		if errors.Is(err, errAddrType) {
			writeReply(rw, ReplyAddressTypeNotSupported, "")
		}
		return "", fmt.Errorf("socks5: read request: %w", err)
	}
	var rep ReplyError
	echo := ""
	switch {
	case req.Cmd != cmdConnect:
		// UDP ASSOCIATE (XEP-0065 §8) and BIND are not supported.
		rep = ReplyCommandNotSupported
	case req.AddrType != atypDomain:
		// XEP-0065 §10.2: ATYP is hardcoded to 3.
		rep = ReplyAddressTypeNotSupported
	case req.Port != 0:
		// XEP-0065 §5.3.2 rule 2: the port MUST be 0.
		rep, echo = ReplyNotAllowed, req.Addr
	case !accept(req.Addr):
		// Not a bytestream we expect: never relay anything else.
		rep, echo = ReplyConnectionRefused, req.Addr
	default:
		if err := writeReply(rw, ReplySucceeded, req.Addr); err != nil {
			return "", fmt.Errorf("socks5: write reply: %w", err)
		}
		return req.Addr, nil
	}
	writeReply(rw, rep, echo)
	return "", fmt.Errorf("socks5: refused request for %q port %d: %w", trunc(req.Addr), req.Port, rep)
}

func trunc(s string) string {
	if len(s) > 48 {
		return s[:48] + "…"
	}
	return s
}
