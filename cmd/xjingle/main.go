// Command xjingle sends and receives files over Jingle (XEP-0166/0234), places
// and answers calls, probes an XMPP server's Jingle services, and runs a
// TURN/STUN relay.
//
// It is a thin shell: flags and configuration become library configs, and the
// work is done by the packages client, jingle, jingle/filetransfer, ibb and
// relay.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line and returns the process exit code.
func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "xjingle:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "xjingle:", describe(err))
	return 1
}

// exitError carries an exit code (and an optional one-line message) out of a
// command.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
