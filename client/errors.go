package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Errors callers branch on. Dial's errors wrap one of them when it applies.
var (
	ErrAuth            = errors.New("client: authentication failed (wrong JID or password)")
	ErrUnreachable     = errors.New("client: server unreachable")
	ErrTLS             = errors.New("client: TLS certificate not trusted")
	ErrTimeout         = errors.New("client: timed out")
	ErrClosed          = errors.New("client: connection closed")
	ErrPeerOffline     = errors.New("client: peer is offline (no available resource)")
	ErrPeerUnsupported = errors.New("client: peer does not support the feature")
	ErrNoProxy         = errors.New("client: server offers no SOCKS5 bytestream proxy")
)

// classify wraps err with the sentinel that describes it, if any.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		uae  x509.UnknownAuthorityError
		hne  x509.HostnameError
		cie  x509.CertificateInvalidError
		cve  *tls.CertificateVerificationError
		ope  *net.OpError
		dnse *net.DNSError
		pe   *ProxyError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &hne), errors.As(err, &cie):
		return fmt.Errorf("%w: %w", ErrTLS, err)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &pe):
		return err // says what failed, and Is(ErrUnreachable) already
	case errors.As(err, &dnse), errors.As(err, &ope):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	s := err.Error()
	if strings.Contains(s, "not-authorized") || strings.Contains(s, "credentials-expired") || strings.Contains(s, "account-disabled") {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	if strings.Contains(s, "bad certificate") || strings.Contains(s, "unknown authority") {
		return fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
