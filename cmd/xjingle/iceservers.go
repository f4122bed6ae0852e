package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/relay"
)

// turnRESTTTL is how long the TURN REST credentials computed from
// --turn-rest-secret-file stay valid (draft-uberti-behave-turn-rest-00 §2.2
// recommends a day).
const turnRESTTTL = 24 * time.Hour

// iceFlags are the hand-given STUN/TURN servers (--stun, --turn) and TURN
// credentials; ICE uses them besides what the XMPP server announces
// (XEP-0215).
type iceFlags struct {
	stun           []string
	turn           []string
	turnUser       string
	turnSecretFile string
	turnRESTFile   string
}

// errTURNCredentials: --turn without a way to authenticate.
var errTURNCredentials = errors.New("--turn needs --turn-user with --turn-secret-file (long-term credentials), or --turn-rest-secret-file (TURN REST shared secret)")

// resolveICEFlags merges flags, environment (XJINGLE_STUN, XJINGLE_TURN
// comma-separated; XJINGLE_TURN_USER, XJINGLE_TURN_SECRET_FILE,
// XJINGLE_TURN_REST_SECRET_FILE) and the config file, flags first.
func (g *globals) resolveICEFlags(fc *fileConfig) iceFlags {
	list := func(flag []string, env string, file []string) []string {
		var src []string
		switch {
		case len(flag) > 0:
			src = flag
		case os.Getenv(env) != "":
			src = strings.Split(os.Getenv(env), ",")
		default:
			src = file
		}
		var out []string
		for _, s := range src {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return iceFlags{
		stun:           list(g.ice.stun, "XJINGLE_STUN", fc.STUN),
		turn:           list(g.ice.turn, "XJINGLE_TURN", fc.TURN),
		turnUser:       firstNonEmpty(g.ice.turnUser, os.Getenv("XJINGLE_TURN_USER"), fc.TURNUser),
		turnSecretFile: firstNonEmpty(g.ice.turnSecretFile, os.Getenv("XJINGLE_TURN_SECRET_FILE"), fc.TURNSecretFile),
		turnRESTFile:   firstNonEmpty(g.ice.turnRESTFile, os.Getenv("XJINGLE_TURN_REST_SECRET_FILE"), fc.TURNRESTSecretFile),
	}
}

// servers turns the flags into ICE servers. URIs follow RFC 7064/7065:
// stun:host[:port], stuns:host[:port], turn:host[:port][?transport=udp|tcp],
// turns:host[:port][?transport=tcp]. TURN credentials are the long-term
// --turn-user and the password in --turn-secret-file, or REST credentials
// (username "<expiry>:<user>", password HMAC-SHA1 of it under the shared
// secret) computed for user (--turn-user, else the account's bare JID).
func (f iceFlags) servers(account string, now time.Time) ([]webrtc.ICEServer, error) {
	var out []webrtc.ICEServer
	for _, s := range f.stun {
		u, err := stun.ParseURI(s)
		if err != nil {
			return nil, fmt.Errorf("--stun %q: %w", s, err)
		}
		if u.Scheme != stun.SchemeTypeSTUN && u.Scheme != stun.SchemeTypeSTUNS {
			return nil, fmt.Errorf("--stun %q: not a stun: or stuns: URI", s)
		}
		out = append(out, webrtc.ICEServer{URLs: []string{s}})
	}
	if len(f.turn) == 0 {
		return out, nil
	}
	var user, pass string
	switch {
	case f.turnRESTFile != "":
		secrets, err := relay.ReadSecretsFile(f.turnRESTFile)
		if err != nil {
			return nil, fmt.Errorf("--turn-rest-secret-file: %w", err)
		}
		user, pass = relay.RESTCredentials(secrets[0], firstNonEmpty(f.turnUser, account), turnRESTTTL, now)
	case f.turnUser != "" && f.turnSecretFile != "":
		pw, err := relay.ReadSecretsFile(f.turnSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--turn-secret-file: %w", err)
		}
		user, pass = f.turnUser, pw[0]
	default:
		return nil, errTURNCredentials
	}
	for _, s := range f.turn {
		u, err := stun.ParseURI(s)
		if err != nil {
			return nil, fmt.Errorf("--turn %q: %w", s, err)
		}
		if u.Scheme != stun.SchemeTypeTURN && u.Scheme != stun.SchemeTypeTURNS {
			return nil, fmt.Errorf("--turn %q: not a turn: or turns: URI", s)
		}
		out = append(out, webrtc.ICEServer{URLs: []string{s}, Username: user, Credential: pass, CredentialType: webrtc.ICECredentialTypePassword})
	}
	return out, nil
}

// iceServers resolves the hand-given STUN/TURN servers for acct.
func (g *globals) iceServers(fc *fileConfig, acct account) ([]webrtc.ICEServer, error) {
	user := acct.JID
	if i := strings.IndexByte(user, '/'); i >= 0 {
		user = user[:i] // REST credentials name the bare JID
	}
	return g.resolveICEFlags(fc).servers(user, time.Now())
}
