package testbed

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// adminTimeout bounds one admin-socket command issued without a context.
const adminTimeout = 15 * time.Second

// ErrBadUsername is returned for names that are not a plain localpart.
var ErrBadUsername = errors.New("testbed: bad username")

// Admin runs one line in Prosody's admin shell (mod_admin_shell, the
// language of `prosodyctl shell`) and returns the result text. A line
// starting with ">" is Lua run inside the server. An answer of type error
// comes back as *AdminError.
func (b *Bed) Admin(ctx context.Context, line string) (string, error) {
	if err := b.check(); err != nil {
		return "", err
	}
	return admin(ctx, b.AdminSocket, line, "command")
}

// bare turns "alice" into "alice@domain" and checks the localpart. Names
// that already carry "@domain" are accepted.
func (b *Bed) bare(name string) (local, bareJID string, err error) {
	local = name
	if l, d, ok := strings.Cut(name, "@"); ok {
		if d != b.Domain {
			return "", "", fmt.Errorf("%w: %q is not on %s", ErrBadUsername, name, b.Domain)
		}
		local = l
	}
	// RFC 7622 §3.3.1 forbids these in a localpart; we also refuse spaces,
	// controls and upper case (Prosody would nodeprep them, silently
	// changing the JID the test expects).
	if local == "" || len(local) > 1023 ||
		strings.ContainsAny(local, "\"&'/:<>@ \t\r\n\\") || strings.ToLower(local) != local {
		return "", "", fmt.Errorf("%w: %q", ErrBadUsername, name)
	}
	for _, r := range local {
		if r < 0x21 || r == 0x7f {
			return "", "", fmt.Errorf("%w: %q", ErrBadUsername, name)
		}
	}
	return local, local + "@" + b.Domain, nil
}

// CreateUser creates the account name@Domain (name may also be given as a
// bare JID) with password. It works while the server runs.
func (b *Bed) CreateUser(name, password string) (Account, error) {
	_, jid, err := b.bare(name)
	if err != nil {
		return Account{}, err
	}
	if password == "" {
		return Account{}, fmt.Errorf("testbed: create user %s: empty password", jid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := b.check(); err != nil {
		return Account{}, fmt.Errorf("testbed: create user %s: %w", jid, err)
	}
	line := fmt.Sprintf("user:create(%s, %s)", lua(jid), lua(password))
	if _, err := admin(ctx, b.AdminSocket, line, "user:create("+jid+")"); err != nil {
		return Account{}, fmt.Errorf("testbed: create user %s: %w", jid, err)
	}
	return Account{JID: jid, Password: password}, nil
}

// AddUser creates the account name@Domain with a random password, failing t
// on error.
func (b *Bed) AddUser(t testing.TB, name string) Account {
	t.Helper()
	a, err := b.CreateUser(name, RandomPassword())
	if err != nil {
		t.Fatalf("%v\nprosody log:\n%s", err, b.LogTail(20))
	}
	return a
}

// RandomPassword returns 16 random bytes in unpadded base64url.
func RandomPassword() string {
	var p [16]byte
	_, _ = rand.Read(p[:]) // never fails on Linux (crypto/rand docs)
	return base64.RawURLEncoding.EncodeToString(p[:])
}

// subscribeLua makes each of two local users a contact of the other with
// subscription "both" (RFC 6121 §3), through Prosody's rostermanager so the
// server's roster cache and any online sessions (roster push, RFC 6121
// §2.1.6) see it.
const subscribeLua = `>local rm = require "core.rostermanager"; ` +
	`local function add(u, h, c) ` +
	`local r = rm.load_roster(u, h); ` +
	`if not r then error("cannot load roster of " .. u) end; ` +
	`r[c] = { subscription = "both"; groups = {}; }; ` +
	`local ok, err = rm.save_roster(u, h, r, c); ` +
	`if not ok then error("cannot save roster of " .. u .. ": " .. tostring(err)) end; ` +
	`rm.roster_push(u, h, c); ` +
	`end; ` +
	`local um = require "core.usermanager"; ` +
	`for _, u in ipairs({ %[1]s, %[2]s }) do if not um.user_exists(u, %[3]s) then error("no such user: " .. u) end end; ` +
	`add(%[1]s, %[3]s, %[5]s); add(%[2]s, %[3]s, %[4]s); return "subscribed"`

// SubscribeMutual gives users a and b (names or bare JIDs on Domain) a mutual
// presence subscription: each is in the other's roster with subscription
// "both". Call it before the users log in: online sessions get a roster push
// but no presence until they send presence again.
func (b *Bed) SubscribeMutual(a, c string) error {
	la, ja, err := b.bare(a)
	if err != nil {
		return err
	}
	lc, jc, err := b.bare(c)
	if err != nil {
		return err
	}
	if ja == jc {
		return fmt.Errorf("testbed: subscribe %s to itself", ja)
	}
	if err := b.check(); err != nil {
		return fmt.Errorf("testbed: subscribe %s and %s: %w", ja, jc, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	line := fmt.Sprintf(subscribeLua, lua(la), lua(lc), lua(b.Domain), lua(ja), lua(jc))
	res, err := admin(ctx, b.AdminSocket, line, "subscribe")
	if err != nil {
		return fmt.Errorf("testbed: subscribe %s and %s: %w", ja, jc, err)
	}
	if !strings.Contains(res, "subscribed") {
		return fmt.Errorf("testbed: subscribe %s and %s: unexpected answer %q", ja, jc, res)
	}
	return nil
}

// Subscribe is SubscribeMutual for tests: it fails t on error.
func (b *Bed) Subscribe(t testing.TB, a, c string) {
	t.Helper()
	if err := b.SubscribeMutual(a, c); err != nil {
		t.Fatalf("%v\nprosody log:\n%s", err, b.LogTail(20))
	}
}

// Roster returns the contacts of user name and their subscription states as
// Prosody stores them (for assertions).
func (b *Bed) Roster(name string) (map[string]string, error) {
	l, j, err := b.bare(name)
	if err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	line := fmt.Sprintf(`>local r = require "core.rostermanager".load_roster(%s, %s); local t = {}; `+
		`for k, v in pairs(r) do if k then t[#t+1] = k .. "=" .. tostring(v.subscription) end end; `+
		`table.sort(t); return "roster:" .. table.concat(t, ",")`, lua(l), lua(b.Domain))
	res, err := admin(ctx, b.AdminSocket, line, "roster("+j+")")
	if err != nil {
		return nil, fmt.Errorf("testbed: roster of %s: %w", j, err)
	}
	_, list, ok := strings.Cut(res, "roster:")
	if !ok {
		return nil, fmt.Errorf("testbed: roster of %s: unexpected answer %q", j, res)
	}
	out := map[string]string{}
	for item := range strings.SplitSeq(strings.TrimSpace(list), ",") {
		if k, v, ok := strings.Cut(item, "="); ok {
			out[k] = v
		}
	}
	return out, nil
}
