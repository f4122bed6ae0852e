package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"mellium.im/xmpp/jid"
)

// rungs maps the names users give to --transports to transport namespaces.
var rungs = map[string]string{
	"ibb": ibb.NSJingle,
}

// rungName is the user-facing name of a transport namespace.
func rungName(ns string) string {
	for k, v := range rungs {
		if v == ns {
			return k
		}
	}
	return ns
}

// parseTransports turns "socks5,ibb" into namespaces, in order.
func parseTransports(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(strings.ToLower(name))
			if name == "" {
				continue
			}
			ns, ok := rungs[name]
			if !ok {
				return nil, fmt.Errorf("unknown transport %q (known: %s)", name, strings.Join(rungNames(), ", "))
			}
			out = append(out, ns)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no transport named")
	}
	return out, nil
}

func rungNames() []string {
	var names []string
	for k := range rungs {
		names = append(names, k)
	}
	return names
}

// engine is one XMPP connection with Jingle file transfer on it.
type engine struct {
	cl  *client.Client
	ibb *ibb.Handler
	mgr *jingle.Manager
	app *filetransfer.App
	log *slog.Logger
}

// engineConfig is what startEngine needs besides the account.
type engineConfig struct {
	store   *filetransfer.Store
	appOpts []filetransfer.Option
	allow   func(jid.JID) bool
}

// startEngine connects and registers the file-transfer application and the
// transports on a Jingle manager.
func startEngine(ctx context.Context, acct account, log *slog.Logger, ec engineConfig) (*engine, error) {
	j, err := jid.Parse(acct.JID)
	if err != nil {
		return nil, fmt.Errorf("bad JID %q: %w", acct.JID, err)
	}
	cl, err := client.Dial(ctx, client.Config{
		JID:                j,
		Password:           acct.Password,
		Server:             acct.Server,
		DirectTLS:          acct.DirectTLS,
		CAFile:             acct.CA,
		InsecureSkipVerify: acct.Insecure,
		Logger:             log,
	})
	if err != nil {
		return nil, err
	}
	e := &engine{cl: cl, log: log}
	e.ibb, err = ibb.NewHandler(cl, ibb.WithLogger(log))
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("ibb: %w", err)
	}
	e.app = filetransfer.New(ec.store, append([]filetransfer.Option{filetransfer.WithLogger(log)}, ec.appOpts...)...)
	opts := []jingle.Option{
		jingle.WithLogger(log),
		jingle.WithApplication(e.app),
		jingle.WithTransport(e.ibb.JingleTransport()),
	}
	if ec.allow != nil {
		opts = append(opts, jingle.WithAllowedPeer(ec.allow))
	}
	e.mgr, err = jingle.NewManager(cl, opts...)
	if err != nil {
		e.ibb.Close()
		cl.Close()
		return nil, fmt.Errorf("jingle: %w", err)
	}
	return e, nil
}

// Close ends every session, then the connection.
func (e *engine) Close() error {
	return errors.Join(e.mgr.Close(), e.ibb.Close(), e.cl.Close())
}

// resolvePeer turns --to into the full JID to send to: a full JID is checked
// for file-transfer support, a bare one is resolved from presence to its best
// resource that supports it.
func (e *engine) resolvePeer(ctx context.Context, to string) (jid.JID, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return jid.JID{}, fmt.Errorf("bad JID %q: %w", to, err)
	}
	list, err := e.cl.Resolve(ctx, j, filetransfer.NS)
	if err != nil {
		return jid.JID{}, err
	}
	return list[0], nil
}
