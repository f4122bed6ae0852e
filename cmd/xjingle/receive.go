package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"golang.org/x/term"
	"mellium.im/xmpp/jid"
)

func newReceiveCmd(g *globals) *cobra.Command {
	var (
		dir         string
		from        []string
		acceptAll   bool
		once        bool
		keepPartial bool
		requireHash bool
		noResume    bool
		flat        bool
		rangeArg    string
	)
	cmd := &cobra.Command{
		Use:   "receive [--dir D] [--from JID]... [--accept-all] [--once] [--flat] [--range OFFSET[:LENGTH]]",
		Short: "Wait for files and save them",
		Long: `Receive waits for Jingle file offers and saves accepted files in --dir.

Which offers are accepted: with --from, only those from the listed JIDs (a
bare JID matches any of its resources); with --accept-all, every offer; else
each offer is asked about on the terminal.

A file appears under its final name only after its size and hash (when the
sender offered one) check out; names are sanitised and never leave --dir.
With --once, receive exits after the first transfer, with status 0 only if
that file arrived complete (and verified, with --require-hash).

A transfer that fails or is cut off (process killed, connection lost) is
kept in --dir as .xjingle-resume-KEY.part with a .json sidecar, never under
its final name; when the same peer (any resource) offers the same file again
(name, size, date, hash) and supports ranged transfers, only the rest is
requested (XEP-0234 §6.4). --no-resume (config receive.no_resume) turns this
off: failed transfers are deleted (or kept as NAME.failed, --keep-partial).

A file sent from a folder (its name has "/" separators, e.g. photos/a.jpg)
is saved under that relative path inside --dir: every component is
sanitised, ".." and absolute paths are dropped, the depth is bounded, and
no symbolic link in --dir is followed out of it (a name taken by a file or
a link becomes "name (1)"). --flat (config receive.flat) saves every file
directly in --dir under its base name.

--range OFFSET[:LENGTH] (with --once) asks the sender of the next accepted
offer for only LENGTH bytes from OFFSET (to the end without LENGTH;
XEP-0234 §6.4) and saves them as NAME.range-OFFSET-END (END = OFFSET +
LENGTH). The sender's hash covers the whole file, so a range cannot be
verified: it is reported with "verified": false, "verify_note": "byte
range"; its length is checked. A range outside the file fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := g.loadFileConfig()
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			if !fl.Changed("dir") && fc.Receive.Dir != "" {
				dir = fc.Receive.Dir
			}
			if !fl.Changed("from") {
				from = append(from, fc.Receive.AcceptFrom...)
			}
			acceptAll = acceptAll || fc.Receive.AcceptAll
			keepPartial = keepPartial || fc.Receive.KeepPartial
			requireHash = requireHash || fc.Receive.RequireHash
			noResume = noResume || fc.Receive.NoResume
			flat = flat || fc.Receive.Flat
			var byteRange *filetransfer.Range
			if rangeArg != "" {
				if !once {
					return errors.New("--range needs --once (it applies to one offer)")
				}
				r, err := parseRange(rangeArg)
				if err != nil {
					return err
				}
				byteRange = &r
			}

			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return fmt.Errorf("download dir %q is not a directory", dir)
			}
			policy, err := g.acceptPolicy(from, acceptAll)
			if err != nil {
				return err
			}
			ec, err := g.engineConfig(fc)
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

			pr := newProgress(g)
			var (
				mu    sync.Mutex
				first *filetransfer.Result
				done  = make(chan struct{})
				once1 sync.Once
				wg    sync.WaitGroup
			)
			onTransfer := func(t *filetransfer.Transfer) {
				pr.track(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-t.Done()
					res := t.Result()
					g.report(res, nil)
					mu.Lock()
					if first == nil {
						first = res
					}
					mu.Unlock()
					if once {
						once1.Do(func() { close(done) })
					}
				}()
			}
			if ec.iceServers, err = g.iceServers(fc, acct); err != nil {
				return err
			}
			ec.store = &filetransfer.Store{Dir: dir, KeepPartial: keepPartial, Resume: !noResume, Flat: flat}
			ec.appOpts = []filetransfer.Option{
				filetransfer.WithAcceptDecision(withRange(policy, byteRange)),
				filetransfer.WithOnTransfer(onTransfer),
				filetransfer.WithRequireHash(requireHash),
			}
			e, err := startEngine(ctx, acct, g.logger(), ec)
			if err != nil {
				return err
			}
			if !g.json {
				fmt.Fprintf(g.stderr, "xjingle: receiving as %s into %s\n", e.Client.LocalJID(), dir)
			} else {
				_ = writeJSON(g.stderr, map[string]string{"event": "ready", "jid": e.Client.LocalJID().String(), "dir": dir})
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
			cerr := e.Close()
			wg.Wait()
			pr.Wait()
			if once {
				mu.Lock()
				defer mu.Unlock()
				if first == nil {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("no file received: %w", err)
					}
					return errors.New("no file received")
				}
				if first.Err != nil || (requireHash && !first.Verified && first.VerifyNote != filetransfer.VerifyNoteRange) {
					return &exitError{code: 1}
				}
			}
			if cerr != nil && ctx.Err() == nil {
				return cerr
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", ".", "directory to save files in")
	f.StringSliceVar(&from, "from", nil, "accept offers from this JID (repeatable; bare JIDs match any resource)")
	f.BoolVar(&acceptAll, "accept-all", false, "accept every offer, from anyone")
	f.BoolVar(&once, "once", false, "exit after the first transfer")
	f.BoolVar(&keepPartial, "keep-partial", false, "keep failed transfers as NAME.failed instead of deleting them")
	f.BoolVar(&requireHash, "require-hash", false, "refuse files the sender sent no hash for")
	f.BoolVar(&noResume, "no-resume", false, "do not keep failed transfers for resume, nor resume them")
	f.BoolVar(&flat, "flat", false, "save every file directly in --dir, ignoring the folders in its name")
	f.StringVar(&rangeArg, "range", "", "with --once: receive only bytes OFFSET[:LENGTH] of the offered file (saved as NAME.range-OFFSET-END)")
	return cmd
}

// acceptPolicy builds the accept policy from --from / --accept-all, or asks on
// the terminal.
func (g *globals) acceptPolicy(from []string, all bool) (func(context.Context, *filetransfer.Offer) (bool, error), error) {
	if all {
		return filetransfer.AcceptAll, nil
	}
	if len(from) > 0 {
		var allowed []jid.JID
		for _, s := range from {
			j, err := jid.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("bad --from JID %q: %w", s, err)
			}
			allowed = append(allowed, j)
		}
		return func(_ context.Context, o *filetransfer.Offer) (bool, error) {
			return matchJID(allowed, o.Peer), nil
		}, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		if tty != nil {
			tty.Close()
		}
		return nil, errors.New("no terminal to ask on: give --from JID or --accept-all")
	}
	var mu sync.Mutex // one question at a time
	return func(ctx context.Context, o *filetransfer.Offer) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		size := "unknown size"
		if o.Size >= 0 {
			size = fmt.Sprintf("%d bytes", o.Size)
		}
		fmt.Fprintf(tty, "Accept %q (%s) from %s? [y/N] ", o.Name, size, o.Peer)
		ans := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(tty).ReadString('\n')
			ans <- line
		}()
		select {
		case line := <-ans:
			line = strings.ToLower(strings.TrimSpace(line))
			return line == "y" || line == "yes", nil
		case <-ctx.Done():
			fmt.Fprintln(tty, "(offer withdrawn)")
			return false, ctx.Err()
		}
	}, nil
}

// parseRange parses --range OFFSET[:LENGTH] (decimal bytes; LENGTH > 0).
func parseRange(s string) (filetransfer.Range, error) {
	offs, lens, hasLen := strings.Cut(s, ":")
	off, err := strconv.ParseInt(offs, 10, 64)
	if err != nil || off < 0 {
		return filetransfer.Range{}, fmt.Errorf("bad --range %q: want OFFSET[:LENGTH] in bytes", s)
	}
	r := filetransfer.Range{Offset: off}
	if hasLen {
		n, err := strconv.ParseInt(lens, 10, 64)
		if err != nil || n <= 0 {
			return filetransfer.Range{}, fmt.Errorf("bad --range %q: LENGTH must be a positive number of bytes", s)
		}
		r.Length = n
	}
	return r, nil
}

// withRange turns an accept policy into a decision that asks for r (if
// not nil) on the first offer it accepts.
func withRange(policy func(context.Context, *filetransfer.Offer) (bool, error), r *filetransfer.Range) func(context.Context, *filetransfer.Offer) (filetransfer.Decision, error) {
	var used atomic.Bool
	return func(ctx context.Context, o *filetransfer.Offer) (filetransfer.Decision, error) {
		ok, err := policy(ctx, o)
		if err != nil || !ok {
			return filetransfer.Decision{}, err
		}
		d := filetransfer.Decision{Accept: true}
		if r != nil && used.CompareAndSwap(false, true) {
			d.Range = r
		}
		return d, nil
	}
}

// matchJID reports whether j is in list: a bare entry matches every resource.
func matchJID(list []jid.JID, j jid.JID) bool {
	for _, a := range list {
		if a.Resourcepart() == "" {
			if a.Bare().Equal(j.Bare()) {
				return true
			}
		} else if a.Equal(j) {
			return true
		}
	}
	return false
}
