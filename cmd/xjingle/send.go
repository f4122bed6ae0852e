package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/transports"
)

func newSendCmd(g *globals) *cobra.Command {
	var (
		to         string
		transports []string
	)
	cmd := &cobra.Command{
		Use:   "send --to JID FILE...",
		Short: "Send files to an XMPP address over Jingle",
		Long: `Send offers each FILE to the peer and sends it over the first transport in
--transports that the peer supports; when that transport fails (or does not
connect within 30 s), it moves the transfer to the next one without restarting
the file. By default ICE with a WebRTC data channel comes first when the peer
supports it (it crosses NATs; STUN/TURN from your server and --stun/--turn),
then SOCKS5 (direct connections, then the server's proxy), then IBB.
--json reports the transport used and every transport tried. A bare JID (user@example.org) is resolved to the peer's online
resource that supports Jingle file transfer; a full JID targets that resource.

Exit status is 0 only when every file was confirmed by the receiver.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			if to == "" {
				return errors.New("--to is required")
			}
			fc, err := g.loadFileConfig()
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("transports") && len(fc.Send.Transports) > 0 {
				transports = fc.Send.Transports
			}
			order, err := parseTransports(transports)
			if err != nil {
				return err
			}
			acct, err := g.account(fc)
			if err != nil {
				return err
			}
			ctx, cancel, err := g.withTimeout(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()

			iceServers, err := g.iceServers(fc, acct)
			if err != nil {
				return err
			}
			pr := newProgress(g)
			e, err := startEngine(ctx, acct, g.logger(), engineConfig{
				ibbBlock:   g.ibbBlock,
				interfaces: g.interfaceNames(fc),
				noDirect:   g.noDirect,
				iceServers: iceServers,
				appOpts:    []filetransfer.Option{filetransfer.WithOnTransfer(pr.track)},
			})
			if err != nil {
				return err
			}
			defer e.Close()
			peer, err := e.ResolvePeer(ctx, to)
			if err != nil {
				return err
			}
			failed := 0
			for _, path := range files {
				res, err := e.App.Send(ctx, e.Manager, peer, path, e.SendOptions(ctx, peer, order))
				if err != nil || !res.Verified {
					failed++
				}
				g.report(res, err)
			}
			pr.Wait()
			if failed > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d of %d files not confirmed by %s", failed, len(files), peer)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the receiver's XMPP address (bare or full JID)")
	f.StringSliceVar(&transports, "transports", engine.DefaultTransports, "transports to try, in order (ice, socks5, ibb; ice only when the peer supports it)")
	return cmd
}

// withTimeout applies --timeout to ctx.
func (g *globals) withTimeout(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if g.timeout == "" {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	d, err := time.ParseDuration(g.timeout)
	if err != nil || d <= 0 {
		return nil, nil, fmt.Errorf("bad --timeout %q", g.timeout)
	}
	c, cancel := context.WithTimeout(ctx, d)
	return c, cancel, nil
}

// report prints one transfer's result: a JSON line with --json, else a human
// line.
func (g *globals) report(res *filetransfer.Result, err error) {
	if res == nil {
		res = &filetransfer.Result{}
	}
	if err != nil && res.Err == nil {
		res.Err = err
	}
	out := jsonResult{Result: *res, Transport: rungName(res.Transport)}
	for _, a := range res.Tried {
		out.Tried = append(out.Tried, transports.Attempt{Transport: rungName(a.Transport), Err: a.Err})
	}
	if res.Err != nil {
		out.Error = describe(res.Err)
	}
	if g.json {
		_ = writeJSON(g.stdout, out)
		return
	}
	switch {
	case res.Err != nil:
		fmt.Fprintf(g.stdout, "FAILED %s: %s\n", res.Name, out.Error)
	case res.Verified:
		fmt.Fprintf(g.stdout, "ok     %s  %d bytes  %.1f MB/s  %s  sha256 %s\n", res.Name, res.Bytes, rate(res), out.Transport, res.SHA256)
	default:
		fmt.Fprintf(g.stdout, "done   %s  %d bytes  %s  not verified: %s\n", res.Name, res.Bytes, out.Transport, res.VerifyNote)
	}
	for _, a := range out.Tried {
		fmt.Fprintf(g.stdout, "       (%s failed: %s)\n", a.Transport, a.Err)
	}
}

// jsonResult is the JSON line printed per file.
type jsonResult struct {
	filetransfer.Result
	Transport string `json:"transport"`
	// Tried: the transports tried before, by their --transports names.
	Tried []transports.Attempt `json:"tried,omitempty"`
}

func rate(r *filetransfer.Result) float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Seconds / 1e6
}
