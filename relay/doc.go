// Package relay is a TURN (RFC 8656) and STUN (RFC 8489) relay server built on pion/turn, for operators of
// XMPP servers whose users' Jingle calls and file transfers must cross NATs. It is what `xjingle relay` runs.
//
// What it adds to pion/turn is what a production relay needs:
//
//   - TURN REST API credentials (draft-uberti-behave-turn-rest-00), computed exactly as coturn's
//     use-auth-secret does, so Prosody mod_turn_external and ejabberd mod_stun_disco work unchanged; several
//     secrets at once for rotation; static long-term users as an alternative.
//   - Safe defaults: no relaying to loopback, private, CGNAT, link-local (cloud metadata), multicast or
//     reserved addresses unless allowed (PeerPolicy, RFC 8656 §21.2.2); per-user and total allocation quotas
//     (486); a bandwidth cap and a maximum age per allocation; a per-source rate limit on unauthenticated
//     requests; bounded TCP/TLS connections with handshake and idle timeouts.
//   - A UDP data plane of its own: epoll loops outside Go's netpoller relay ChannelData on channels pion bound
//     (RFC 8656 §12) both ways, and hand everything else to pion. UDP listeners have several SO_REUSEPORT
//     sockets. TCP and TLS listeners with
//     certificate reload; RFC 6062 TCP allocations; external addresses for 1:1 NAT; IPv4 and IPv6.
//   - Prometheus metrics on the server's own registry and /healthz (Server.Handler), structured slog logs,
//     graceful drain (Shutdown).
//
// It is not an XMPP component, does not discover services (XEP-0215 is the XMPP server's job; see
// RESTCredentials), and does not implement DTLS transport or the TURN OAuth mechanism.
//
// Protocol flow, for one UDP allocation:
//
//	client                              relay                               peer
//	Allocate (no credentials)    ──▶  401 + REALM + NONCE                 (rate limited per source IP)
//	Allocate (USERNAME=exp:user, ──▶  check expiry and MESSAGE-INTEGRITY  (key MD5(user:realm:base64(HMAC-SHA1)))
//	          MESSAGE-INTEGRITY)       quota → 486, else relayed address
//	CreatePermission(peer)       ──▶  PeerPolicy → 403, else permission
//	ChannelBind / Send           ──▶  relayed socket ──────────────────▶  datagram
//	                             ◀──  ChannelData / Data indication ◀───  datagram (permitted peers only)
//	Refresh(lifetime 0)          ──▶  allocation deleted, port and quota freed
package relay
