package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"golang.org/x/term"
)

// fileConfig is the TOML config file. Every key is optional; flags win over
// the environment, which wins over the file.
type fileConfig struct {
	JID       string `toml:"jid"`
	Password  string `toml:"password"`
	Server    string `toml:"server"`
	CA        string `toml:"ca"`
	DirectTLS bool   `toml:"direct_tls"`
	Insecure  bool   `toml:"insecure_skip_verify"`
	// Interfaces restrict SOCKS5 direct candidates (--interface).
	Interfaces []string `toml:"interfaces"`
	// InlineMax is --inline-max (nil: not set).
	InlineMax *int64 `toml:"inline_max"`
	// Proxy is the user's SOCKS5 proxy (--proxy).
	Proxy string `toml:"proxy"`
	// STUN/TURN servers for ICE (--stun, --turn and their credentials).
	STUN               []string `toml:"stun"`
	TURN               []string `toml:"turn"`
	TURNUser           string   `toml:"turn_user"`
	TURNSecretFile     string   `toml:"turn_secret_file"`
	TURNRESTSecretFile string   `toml:"turn_rest_secret_file"`

	Send struct {
		Transports  []string `toml:"transports"`
		RequireHash bool     `toml:"require_hash"`
	} `toml:"send"`
	Receive struct {
		Dir         string   `toml:"dir"`
		AcceptFrom  []string `toml:"accept_from"`
		AcceptAll   bool     `toml:"accept_all"`
		KeepPartial bool     `toml:"keep_partial"`
		RequireHash bool     `toml:"require_hash"`
		NoResume    bool     `toml:"no_resume"`
		Flat        bool     `toml:"flat"`
	} `toml:"receive"`
}

// account is the resolved account configuration.
type account struct {
	JID       string
	Password  string
	Server    string
	CA        string
	DirectTLS bool
	Insecure  bool
}

// defaultConfigPath is $XDG_CONFIG_HOME/xjingle/config.toml (or the platform
// equivalent).
func defaultConfigPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "xjingle", "config.toml")
}

// loadFileConfig reads the config file. A missing default file is no error; a
// missing file named with --config is.
func (g *globals) loadFileConfig() (*fileConfig, error) {
	var fc fileConfig
	path, explicit := g.configFile, true
	if path == "" {
		path, explicit = defaultConfigPath(), false
	}
	if path == "" {
		return &fc, nil
	}
	md, err := toml.DecodeFile(path, &fc)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return &fc, nil
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return &fc, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// account resolves the account settings: flags, then environment, then file;
// the password from XJINGLE_PASSWORD, the file, or a terminal prompt.
func (g *globals) account(fc *fileConfig) (account, error) {
	a := account{
		JID:       firstNonEmpty(g.jid, os.Getenv("XJINGLE_JID"), fc.JID),
		Server:    firstNonEmpty(g.server, os.Getenv("XJINGLE_SERVER"), fc.Server),
		CA:        firstNonEmpty(g.ca, os.Getenv("XJINGLE_CA"), fc.CA),
		DirectTLS: g.directTLS || fc.DirectTLS,
		Insecure:  g.insecure || fc.Insecure,
		Password:  firstNonEmpty(os.Getenv("XJINGLE_PASSWORD"), fc.Password),
	}
	if a.JID == "" {
		return a, errors.New("no account: give --jid, set XJINGLE_JID, or put jid in the config file")
	}
	if a.Password == "" {
		pw, err := promptPassword(g.stderr, a.JID)
		if err != nil {
			return a, err
		}
		a.Password = pw
	}
	return a, nil
}

// interfaceNames resolves --interface: the flag, else XJINGLE_INTERFACES
// (comma-separated), else the config file's interfaces.
func (g *globals) interfaceNames(fc *fileConfig) []string {
	var names []string
	switch {
	case len(g.interfaces) > 0:
		names = g.interfaces
	case os.Getenv("XJINGLE_INTERFACES") != "":
		names = strings.Split(os.Getenv("XJINGLE_INTERFACES"), ",")
	default:
		names = fc.Interfaces
	}
	var out []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// inlineLimit resolves --inline-max: the flag, else XJINGLE_INLINE_MAX,
// else the config file's inline_max, else the default. It returns the
// engine's InlineMax: 0 (inline disabled) becomes -1.
func (g *globals) inlineLimit(fc *fileConfig) (int64, error) {
	n, src := g.inlineMax, "--inline-max"
	switch {
	case g.inlineFlag != nil && g.inlineFlag.Changed:
	case os.Getenv("XJINGLE_INLINE_MAX") != "":
		v, err := strconv.ParseInt(strings.TrimSpace(os.Getenv("XJINGLE_INLINE_MAX")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad XJINGLE_INLINE_MAX: %w", err)
		}
		n, src = v, "XJINGLE_INLINE_MAX"
	case fc.InlineMax != nil:
		n, src = *fc.InlineMax, "inline_max"
	}
	if n < 0 || n > engine.MaxInline {
		return 0, fmt.Errorf("bad %s %d: want 0 (disabled) to %d bytes", src, n, engine.MaxInline)
	}
	if n == 0 {
		return -1, nil
	}
	return n, nil
}

// proxyDialer resolves --proxy: the flag, else XJINGLE_PROXY, else the config
// file's proxy, else ALL_PROXY (or all_proxy) with NO_PROXY (or no_proxy)
// hosts bypassing it, as golang.org/x/net/proxy.FromEnvironment reads them.
// "none" or "direct" (in the flag, XJINGLE_PROXY or the file) means no proxy
// and ALL_PROXY is not looked at. nil: connect directly.
//
// Unlike FromEnvironment, an ALL_PROXY that xjingle cannot use (e.g. an
// http:// proxy) is an error, not a silent direct connection: a user who
// set it expects their connections to go through it.
func (g *globals) proxyDialer(fc *fileConfig) (*client.ProxyDialer, error) {
	v, src := g.proxy, "--proxy"
	if v == "" {
		v, src = os.Getenv("XJINGLE_PROXY"), "XJINGLE_PROXY"
	}
	if v == "" {
		v, src = fc.Proxy, "config proxy"
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "none", "direct", "off":
		return nil, nil
	case "":
	default:
		d, err := client.ParseProxy(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		return d, nil
	}
	v, src = os.Getenv("ALL_PROXY"), "ALL_PROXY"
	if v == "" {
		v, src = os.Getenv("all_proxy"), "all_proxy"
	}
	if v == "" {
		return nil, nil
	}
	d, err := client.ParseProxy(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (xjingle needs a SOCKS5 proxy; --proxy none connects directly)", src, err)
	}
	return d.WithBypass(firstNonEmpty(os.Getenv("NO_PROXY"), os.Getenv("no_proxy"))), nil
}

// promptPassword asks on the controlling terminal.
func promptPassword(w io.Writer, jid string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("no password: set XJINGLE_PASSWORD or put password in the config file")
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Password for %s: ", jid)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// writeJSON prints v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
