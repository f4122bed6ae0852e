package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
		rateLimit  string
	)
	cmd := &cobra.Command{
		Use:   "send --to JID FILE|FOLDER...",
		Short: "Send files and folders to an XMPP address over Jingle",
		Long: `Send offers each FILE to the peer and sends it over the first transport in
--transports that the peer supports (inline, first by default, only for
files up to --inline-max bytes); when that transport fails (or does not
connect within 30 s), it moves the transfer to the next one without restarting
the file. By default ICE with a WebRTC data channel comes first when the peer
supports it (it crosses NATs; STUN/TURN from your server and --stun/--turn),
then SOCKS5 (direct connections, then the server's proxy), then IBB.
--json reports the transport used and every transport tried. A bare JID (user@example.org) is resolved to the peer's online
resource that supports Jingle file transfer; a full JID targets that resource.

A FOLDER is walked (in lexical order) and each regular file in it is sent
in its own session under its path relative to the folder's parent, with "/"
separators (photos/2024/a.jpg): an xjingle receiver recreates the tree
inside its --dir (other clients may keep only the base name). Symbolic
links, devices, sockets and pipes inside a folder are skipped with a
warning. A FILE is sent under its base name.

On a terminal, each file has a progress bar and, with several files, an
overall bar (files done, bytes, rate, ETA) sits under them; a resumed
transfer's bar starts at its offset. The last line says how many files
were sent.

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
			ec, err := g.engineConfig(fc)
			if err != nil {
				return err
			}
			if px := ec.proxy; px != nil {
				kept, dropped := engine.WithoutUDP(order)
				if len(kept) == 0 {
					return fmt.Errorf("no transport left: %s cannot go through the SOCKS5 proxy %s; add socks5 or ibb to --transports", strings.Join(dropped, ", "), px)
				}
				if len(dropped) > 0 && cmd.Flags().Changed("transports") {
					// Asked for by name: say why it is not tried. The
					// default ladder drops it quietly.
					g.logger().Warn("not trying "+strings.Join(dropped, ", ")+": UDP cannot go through the SOCKS5 proxy", "proxy", px.String())
				}
				order = kept
			}
			items, err := expandArgs(files, g.stderr)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				return errNoFiles
			}
			rate, err := parseRate(rateLimit)
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

			if ec.iceServers, err = g.iceServers(fc, acct); err != nil {
				return err
			}
			pr := newProgress(g)
			ec.appOpts = []filetransfer.Option{filetransfer.WithOnTransfer(pr.track), filetransfer.WithRateLimit(rate)}
			e, err := startEngine(ctx, acct, g.logger(), ec)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.CheckTransports(order); err != nil {
				return err
			}
			peer, err := e.ResolvePeer(ctx, to)
			if err != nil {
				return err
			}
			var total int64
			for _, it := range items {
				total += it.size
			}
			pr.expect(len(items), total)
			var sum sendSummary
			for _, it := range items {
				opt := e.SendOptions(ctx, peer, order)
				opt.Name = it.name
				res, err := e.App.Send(ctx, e.Manager, peer, it.path, opt)
				sum.add(res, err)
				g.report(res, err)
				if ctx.Err() != nil {
					break
				}
			}
			pr.Wait()
			if len(items) > 1 && !g.json {
				fmt.Fprintln(g.stdout, sum.line(len(items)))
			}
			if failed := len(items) - sum.sent; failed > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d of %d files not confirmed by %s", failed, len(items), peer)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the receiver's XMPP address (bare or full JID)")
	f.StringSliceVar(&transports, "transports", engine.DefaultTransports, fmt.Sprintf("transports to try, in order (%s)", strings.Join(engine.RungNames(), ", ")))
	f.StringVar(&rateLimit, "rate-limit", "", "cap the sending rate, bytes per second with k/M/G suffix (e.g. 20M; default: no cap)")
	return cmd
}

// sendSummary adds up the files a send confirmed.
type sendSummary struct {
	sent  int
	size  int64 // of the files confirmed
	moved int64 // bytes that crossed, over all files
}

func (s *sendSummary) add(res *filetransfer.Result, err error) {
	if res == nil {
		return
	}
	s.moved += res.Bytes
	if err == nil && res.Err == nil && res.Verified {
		s.sent++
		s.size += res.Size
	}
}

// line is the human summary: "N of M files sent, X MB" (and the bytes that
// crossed when resumed transfers moved less).
func (s *sendSummary) line(m int) string {
	l := fmt.Sprintf("%d of %d files sent, %.1f MB", s.sent, m, float64(s.size)/1e6)
	if s.moved != s.size {
		l += fmt.Sprintf(" (%.1f MB over the wire)", float64(s.moved)/1e6)
	}
	return l
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
		fmt.Fprintf(g.stdout, "ok     %s  %d bytes  %.1f MB/s  %s  sha256 %s%s\n", res.Name, res.Bytes, rate(res), out.Transport, res.SHA256, resumed(res))
	default:
		fmt.Fprintf(g.stdout, "done   %s  %d bytes  %s  not verified: %s%s\n", res.Name, res.Bytes, out.Transport, res.VerifyNote, resumed(res))
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

// resumed is the note of a transfer that started at an offset: a resumed
// one ("resumed at X MiB"; the rate counts only the bytes that crossed) or
// a byte range.
func resumed(r *filetransfer.Result) string {
	switch {
	case r.VerifyNote == filetransfer.VerifyNoteRange:
		return fmt.Sprintf("  (bytes %d-%d of the file)", r.Offset, r.Offset+r.Bytes)
	case r.Offset > 0:
		return fmt.Sprintf("  resumed at %.1f MiB", float64(r.Offset)/(1<<20))
	}
	return ""
}

func rate(r *filetransfer.Result) float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Seconds / 1e6
}
