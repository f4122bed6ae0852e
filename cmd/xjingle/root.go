package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/xjingle/xjingle/transports/inline"
)

// version is set with -ldflags "-X main.version=..." by release builds.
var version = ""

// DefaultStallTimeout is --stall-timeout's default: a stream that moves no
// byte for this long while the file is incomplete fails the transfer.
const DefaultStallTimeout = 30 * time.Second

// globals are the flags every subcommand shares.
type globals struct {
	configFile string
	jid        string
	server     string
	ca         string
	insecure   bool
	directTLS  bool
	json       bool
	logLevel   string
	logJSON    bool
	timeout    string
	ibbBlock   int
	interfaces []string
	noDirect   bool
	inlineMax  int64
	inlineFlag *pflag.Flag
	proxy      string
	// stallTimeout: --stall-timeout, the filetransfer idle timeout.
	stallTimeout time.Duration
	ice          iceFlags

	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
}

func newRootCmd() *cobra.Command {
	g := &globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}
	root := &cobra.Command{
		Use:   "xjingle",
		Short: "Jingle file transfer, calls and TURN relay for XMPP",
		Long: `xjingle moves files (and, later, voice) between XMPP accounts with Jingle.

Account settings come from flags, the environment (XJINGLE_JID, XJINGLE_PASSWORD,
XJINGLE_SERVER, XJINGLE_CA, XJINGLE_PROXY) or the config file ($XDG_CONFIG_HOME/xjingle/config.toml).
The password is never taken from the command line: set XJINGLE_PASSWORD, put it in
the config file, or type it when asked.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "config file (default $XDG_CONFIG_HOME/xjingle/config.toml)")
	pf.StringVar(&g.jid, "jid", "", "your XMPP address (env XJINGLE_JID)")
	pf.StringVar(&g.server, "server", "", "connect to HOST:PORT instead of looking up SRV records (env XJINGLE_SERVER)")
	pf.StringVar(&g.ca, "ca", "", "PEM file with extra CA certificates to trust (env XJINGLE_CA)")
	pf.BoolVar(&g.insecure, "insecure-skip-verify", false, "do not verify the server's TLS certificate (dangerous; logged)")
	pf.BoolVar(&g.directTLS, "direct-tls", false, "use direct TLS (xmpps) instead of STARTTLS with --server")
	pf.BoolVar(&g.json, "json", false, "print one JSON object per line (per file) instead of human output")
	pf.StringVar(&g.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	pf.BoolVar(&g.logJSON, "log-json", false, "write logs as JSON")
	pf.StringVar(&g.timeout, "timeout", "", "give up after this long (e.g. 10m); default: no limit for transfers")
	pf.IntVar(&g.ibbBlock, "ibb-block-size", 0, "IBB block size to offer, 1-65535 (default 32767; peers may lower it)")
	pf.BoolVar(&g.noDirect, "no-direct", false, "offer no direct SOCKS5 candidate (keeps your addresses private; the server's proxy or IBB carries the data)")
	pf.Int64Var(&g.inlineMax, "inline-max", inline.DefaultMaxSize, "largest file sent or accepted in one stanza (the inline transport), at most 65536; 0 disables inline (env XJINGLE_INLINE_MAX; config inline_max)")
	g.inlineFlag = pf.Lookup("inline-max")
	pf.StringVar(&g.proxy, "proxy", "", "reach the server, streamhosts and the server's proxy through this SOCKS5 proxy: socks5://[user:pass@]host:port, socks5h://... to resolve names at the proxy (Tor), or none (env XJINGLE_PROXY, then ALL_PROXY)")
	pf.DurationVar(&g.stallTimeout, "stall-timeout", DefaultStallTimeout, "fail a transfer whose stream moves no byte for this long while incomplete (e.g. a SOCKS5 proxy that stalls); 0 disables")
	pf.StringSliceVar(&g.interfaces, "interface", nil, "offer direct SOCKS5 and ICE candidates only on this network interface (repeatable; \"lo\" allows loopback; env XJINGLE_INTERFACES; default: every non-loopback interface)")
	pf.StringArrayVar(&g.ice.stun, "stun", nil, "STUN server for ICE, stun:host[:port] (repeatable; env XJINGLE_STUN, comma-separated); used besides the XMPP server's (XEP-0215)")
	pf.StringArrayVar(&g.ice.turn, "turn", nil, "TURN server for ICE, turn:host[:port][?transport=udp|tcp] or turns:host[:port] (repeatable; env XJINGLE_TURN, comma-separated)")
	pf.StringVar(&g.ice.turnUser, "turn-user", "", "TURN username for --turn (with --turn-secret-file), or the user part of REST credentials (env XJINGLE_TURN_USER)")
	pf.StringVar(&g.ice.turnSecretFile, "turn-secret-file", "", "file holding the TURN password of --turn-user (mode 0600; env XJINGLE_TURN_SECRET_FILE)")
	pf.StringVar(&g.ice.turnRESTFile, "turn-rest-secret-file", "", "file holding the TURN REST shared secret (coturn static-auth-secret); credentials are computed from it (env XJINGLE_TURN_REST_SECRET_FILE)")

	root.AddCommand(
		newSendCmd(g),
		newReceiveCmd(g),
		newProbeCmd(g),
		newDemoCmd(g),
		newRelayCmd(),
		newVersionCmd(g),
	)
	return root
}

func (g *globals) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if g.logJSON {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "+" + s.Value[:12]
				}
			}
		}
	}
	return v
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.json {
				return writeJSON(g.stdout, map[string]string{"version": versionString()})
			}
			fmt.Fprintln(g.stdout, "xjingle", versionString())
			return nil
		},
	}
}

// stallIdle is --stall-timeout for engineConfig.stall: 0 (disabled) becomes
// negative, which startEngine passes on as "no idle timeout".
func (g *globals) stallIdle() time.Duration {
	if g.stallTimeout == 0 {
		return -1
	}
	return g.stallTimeout
}
