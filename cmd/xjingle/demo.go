package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle/filetransfer"
)

func newDemoCmd(g *globals) *cobra.Command {
	var (
		size       int64
		transports []string
		keep       bool
	)
	cmd := &cobra.Command{
		Use:   "demo [FILE]",
		Short: "Send a file between two accounts on a private local Prosody (no account needed)",
		Long: `Demo starts a throwaway Prosody server on loopback (Debian package prosody),
creates two accounts, alice and bob, and sends FILE (or --size random bytes)
from alice to bob with the same code as "xjingle send" and "xjingle receive".
It prints the result and checks that the SHA-256 of what bob received matches.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			order, err := parseTransports(transports)
			if err != nil {
				return err
			}
			ctx, cancel, err := g.withTimeout(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			work, err := os.MkdirTemp("", "xjingle-demo-")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(g.stderr, "xjingle demo: files kept in %s\n", work)
			} else {
				defer os.RemoveAll(work)
			}
			path := ""
			if len(args) == 1 {
				path = args[0]
			} else {
				path = filepath.Join(work, "demo.bin")
				if err := randomFile(path, size); err != nil {
					return err
				}
			}
			want, err := fileSHA256(path)
			if err != nil {
				return err
			}

			fmt.Fprintln(g.stderr, "xjingle demo: starting a private Prosody on 127.0.0.1 ...")
			bed, err := testbed.New(ctx, filepath.Join(work, "prosody"), testbed.Options{})
			if err != nil {
				return fmt.Errorf("demo needs Prosody (apt-get install prosody): %w", err)
			}
			defer bed.Close()
			alice, err := bed.CreateUser("alice", testbed.RandomPassword())
			if err != nil {
				return err
			}
			bob, err := bed.CreateUser("bob", testbed.RandomPassword())
			if err != nil {
				return err
			}
			if err := bed.SubscribeMutual("alice", "bob"); err != nil {
				return err
			}
			inbox := filepath.Join(work, "bob-inbox")
			if err := os.Mkdir(inbox, 0o700); err != nil {
				return err
			}
			log := g.logger()
			pr := newProgress(g)
			// Both accounts are on this machine: SOCKS5 offers loopback
			// unless --interface says otherwise.
			demoIfaces := g.interfaces
			if len(demoIfaces) == 0 {
				demoIfaces = []string{"lo"}
			}
			got := make(chan *filetransfer.Result, 1)
			recv, err := startEngine(ctx, account{JID: bob.JID, Password: bob.Password, Server: bed.C2SAddr, CA: bed.CAFile}, log, engineConfig{
				ibbBlock:   g.ibbBlock,
				interfaces: demoIfaces,
				noDirect:   g.noDirect,
				stall:      g.stallIdle(),
				store:      &filetransfer.Store{Dir: inbox},
				appOpts: []filetransfer.Option{
					filetransfer.WithAcceptPolicy(filetransfer.AcceptAll),
					filetransfer.WithOnTransfer(func(t *filetransfer.Transfer) {
						pr.track(t)
						go func() { <-t.Done(); got <- t.Result() }()
					}),
				},
			})
			if err != nil {
				return fmt.Errorf("bob: %w", err)
			}
			defer recv.Close()
			send, err := startEngine(ctx, account{JID: alice.JID, Password: alice.Password, Server: bed.C2SAddr, CA: bed.CAFile}, log, engineConfig{
				ibbBlock:   g.ibbBlock,
				interfaces: demoIfaces,
				noDirect:   g.noDirect,
				stall:      g.stallIdle(),
				appOpts:    []filetransfer.Option{filetransfer.WithOnTransfer(pr.track)},
			})
			if err != nil {
				return fmt.Errorf("alice: %w", err)
			}
			defer send.Close()
			peer, err := send.ResolvePeer(ctx, bob.JID)
			if err != nil {
				return err
			}
			res, err := send.App.Send(ctx, send.Manager, peer, path, send.SendOptions(ctx, peer, order))
			g.report(res, err)
			var in *filetransfer.Result
			select {
			case in = <-got:
			case <-ctx.Done():
				return ctx.Err()
			}
			pr.Wait()
			g.report(in, nil)
			if err != nil {
				return err
			}
			if in.Err != nil {
				return in.Err
			}
			if in.SHA256 != want {
				return fmt.Errorf("demo: bob's sha256 %s != %s", in.SHA256, want)
			}
			if !g.json {
				fmt.Fprintf(g.stdout, "demo: %s → %s, %d bytes over %s, sha256 verified\n", alice.JID, peer, in.Bytes, rungName(in.Transport))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&size, "size", 8<<20, "size of the random file to send when no FILE is given")
	f.StringSliceVar(&transports, "transports", engine.DefaultTransports, fmt.Sprintf("transports to try, in order (%s)", strings.Join(engine.RungNames(), ", ")))
	f.BoolVar(&keep, "keep", false, "keep the demo's files (server, inbox) and print where")
	return cmd
}

func randomFile(path string, size int64) error {
	if size < 0 {
		return errors.New("negative --size")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
