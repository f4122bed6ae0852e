package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
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
