package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"mellium.im/xmpp/jid"
)

var (
	rungName        = engine.RungName
	parseTransports = engine.ParseTransports
)

// engineConfig is what startEngine needs besides the account.
type engineConfig struct {
	store    *filetransfer.Store
	appOpts  []filetransfer.Option
	ibbBlock int
	// interfaces restrict SOCKS5 direct candidates (--interface).
	interfaces []string
	noDirect   bool
	// inlineMax is engine.Config.InlineMax (inlineLimit).
	inlineMax int64
	// proxy is the user's SOCKS5 proxy (--proxy); nil: direct.
	proxy *client.ProxyDialer
	// stall is --stall-timeout (filetransfer.WithIdleTimeout); 0 keeps
	// filetransfer's default.
	stall time.Duration
	// iceServers are --stun/--turn servers (besides XEP-0215's).
	iceServers []webrtc.ICEServer
}

// engineConfig resolves the global flags every engine shares (--ibb-block-size,
// --interface, --no-direct, --inline-max, --proxy, --stall-timeout) with the
// environment and the config file, before any password is asked for. The
// STUN/TURN servers need the account (REST credentials default to its JID):
// see iceServers.
func (g *globals) engineConfig(fc *fileConfig) (engineConfig, error) {
	inlineMax, err := g.inlineLimit(fc)
	if err != nil {
		return engineConfig{}, err
	}
	px, err := g.proxyDialer(fc)
	if err != nil {
		return engineConfig{}, err
	}
	return engineConfig{
		ibbBlock:   g.ibbBlock,
		interfaces: g.interfaceNames(fc),
		noDirect:   g.noDirect,
		inlineMax:  inlineMax,
		proxy:      px,
		stall:      g.stallIdle(),
	}, nil
}

// startEngine connects acct and sets up Jingle file transfer on it.
func startEngine(ctx context.Context, acct account, log *slog.Logger, ec engineConfig) (*engine.Engine, error) {
	j, err := jid.Parse(acct.JID)
	if err != nil {
		return nil, fmt.Errorf("bad JID %q: %w", acct.JID, err)
	}
	appOpts := ec.appOpts
	if ec.stall != 0 {
		// Before the caller's options, which may override it.
		idle := ec.stall
		if idle < 0 {
			idle = 0 // disabled
		}
		appOpts = append([]filetransfer.Option{filetransfer.WithIdleTimeout(idle)}, appOpts...)
	}
	return engine.New(ctx, engine.Config{
		Client: client.Config{
			JID:                j,
			Password:           acct.Password,
			Server:             acct.Server,
			DirectTLS:          acct.DirectTLS,
			CAFile:             acct.CA,
			InsecureSkipVerify: acct.Insecure,
		},
		Store:        ec.store,
		AppOpts:      appOpts,
		IBBBlockSize: ec.ibbBlock,
		Interfaces:   ec.interfaces,
		ICEServers:   ec.iceServers,
		NoDirect:     ec.noDirect,
		InlineMax:    ec.inlineMax,
		Proxy:        ec.proxy,
		Logger:       log,
	})
}
