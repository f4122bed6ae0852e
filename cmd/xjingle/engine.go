package main

import (
	"context"
	"fmt"
	"log/slog"

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
	// iceServers are --stun/--turn servers (besides XEP-0215's).
	iceServers []webrtc.ICEServer
}

// startEngine connects acct and sets up Jingle file transfer on it.
func startEngine(ctx context.Context, acct account, log *slog.Logger, ec engineConfig) (*engine.Engine, error) {
	j, err := jid.Parse(acct.JID)
	if err != nil {
		return nil, fmt.Errorf("bad JID %q: %w", acct.JID, err)
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
		AppOpts:      ec.appOpts,
		IBBBlockSize: ec.ibbBlock,
		Interfaces:   ec.interfaces,
		ICEServers:   ec.iceServers,
		NoDirect:     ec.noDirect,
		Logger:       log,
	})
}
