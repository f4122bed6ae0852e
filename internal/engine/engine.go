// Package engine assembles one XMPP connection with Jingle file transfer on
// it: the client, the jingle Manager, the file-transfer application and the
// transports. The CLI, the demo and the benchmarks share it.
//
// It is glue, not API: applications that embed xjingle wire the public
// packages themselves (see examples/).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/ibb"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"mellium.im/xmpp/jid"
)

// Rungs maps the names users give to --transports to transport namespaces.
var Rungs = map[string]string{
	"ibb": ibb.NSJingle,
}

// RungName is the user-facing name of a transport namespace.
func RungName(ns string) string {
	for k, v := range Rungs {
		if v == ns {
			return k
		}
	}
	return ns
}

// ParseTransports turns "socks5,ibb" (or several such items) into namespaces,
// in order.
func ParseTransports(list []string) ([]string, error) {
	var out []string
	for _, item := range list {
		for _, name := range strings.Split(item, ",") {
			name = strings.TrimSpace(strings.ToLower(name))
			if name == "" {
				continue
			}
			ns, ok := Rungs[name]
			if !ok {
				return nil, fmt.Errorf("unknown transport %q (known: %s)", name, strings.Join(RungNames(), ", "))
			}
			out = append(out, ns)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no transport named")
	}
	return out, nil
}

// RungNames lists the known transport names, sorted.
func RungNames() []string {
	var names []string
	for k := range Rungs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Config is what New needs.
type Config struct {
	Client client.Config
	// Store receives files; nil declines every offer.
	Store   *filetransfer.Store
	AppOpts []filetransfer.Option
	// IBBBlockSize is the block size we offer for IBB (0: ibb's default).
	IBBBlockSize int
	Logger       *slog.Logger
}

// Engine is one XMPP connection with Jingle file transfer on it.
type Engine struct {
	Client  *client.Client
	IBB     *ibb.Handler
	Manager *jingle.Manager
	App     *filetransfer.App
}

// New connects and registers the file-transfer application and the
// transports on a Jingle manager.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Client.Logger = log
	cl, err := client.Dial(ctx, cfg.Client)
	if err != nil {
		return nil, err
	}
	e := &Engine{Client: cl}
	ibbOpts := []ibb.Option{ibb.WithLogger(log)}
	if cfg.IBBBlockSize > 0 {
		ibbOpts = append(ibbOpts, ibb.WithBlockSize(cfg.IBBBlockSize))
	}
	e.IBB, err = ibb.NewHandler(cl, ibbOpts...)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("ibb: %w", err)
	}
	e.App = filetransfer.New(cfg.Store, append([]filetransfer.Option{filetransfer.WithLogger(log)}, cfg.AppOpts...)...)
	e.Manager, err = jingle.NewManager(cl,
		jingle.WithLogger(log),
		jingle.WithApplication(e.App),
		jingle.WithTransport(e.IBB.JingleTransport()),
	)
	if err != nil {
		e.IBB.Close()
		cl.Close()
		return nil, fmt.Errorf("jingle: %w", err)
	}
	return e, nil
}

// Close ends every session, then the connection.
func (e *Engine) Close() error {
	return errors.Join(e.Manager.Close(), e.IBB.Close(), e.Client.Close())
}

// ResolvePeer turns a JID into the full JID to send to: a full JID is checked
// for file-transfer support, a bare one is resolved from presence to its best
// resource that supports it.
func (e *Engine) ResolvePeer(ctx context.Context, to string) (jid.JID, error) {
	j, err := jid.Parse(to)
	if err != nil {
		return jid.JID{}, fmt.Errorf("bad JID %q: %w", to, err)
	}
	list, err := e.Client.Resolve(ctx, j, filetransfer.NS)
	if err != nil {
		return jid.JID{}, err
	}
	return list[0], nil
}
