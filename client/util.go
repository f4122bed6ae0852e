package client

import (
	"errors"

	"context"
	"github.com/xjingle/xjingle/jingle"
	"time"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func asStanza(err error, target **jingle.StanzaError) bool { return errors.As(err, target) }
