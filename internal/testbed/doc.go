// Package testbed runs a throwaway Prosody XMPP server (the Debian package
// prosody, version 0.12) on free loopback ports, with its own configuration,
// certificates, data directory and log, for integration tests and for the
// `xjingle demo` command.
//
// A Bed offers:
//
//   - c2s with STARTTLS (Bed.C2SAddr) and direct TLS (Bed.DirectTLSAddr,
//     XEP-0368), with a certificate issued by a throwaway CA (Bed.CAFile,
//     Bed.TLSConfig) for Bed.Domain and *.Bed.Domain;
//   - a SOCKS5 bytestreams proxy (XEP-0065) as the component Bed.Proxy65JID,
//     listed in the domain's disco#items;
//   - external services (XEP-0215): a STUN entry, and TURN entries with
//     REST credentials when Options.TURNAddr and Options.TURNSecret are set;
//   - generous rate and stanza-size limits, so that 64 KiB IBB blocks pass;
//   - accounts and mutual roster subscriptions, made through Prosody's admin
//     socket (mod_admin_shell), which works while the server runs.
//
// Everything listens on 127.0.0.1 only; server-to-server is disabled.
//
// It is not a general Prosody manager: it knows one version's configuration
// format, assumes the prosody binary is installed (tests are skipped when it
// is not, see Start), and is meant for tests and demos, never for a server
// that outlives its process. It does not speak XMPP itself; clients connect
// to it with package client or mellium.
//
// Typical use in a test:
//
//	bed := testbed.Start(t)              // stopped by t.Cleanup
//	alice := bed.AddUser(t, "alice")     // random password
//	bob := bed.AddUser(t, "bob")
//	bed.Subscribe(t, "alice", "bob")     // before either logs in
//	// dial bed.C2SAddr with STARTTLS and bed.TLSConfig(), log in as alice.JID
package testbed
