package relay

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 8489 §9.2.2: the long-term key is MD5(username:realm:password).
	"crypto/sha1" //nolint:gosec // TURN REST API: HMAC-SHA1 as coturn's use-auth-secret computes it.
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a peer or an operator file controls.
const (
	maxUsernameLen   = 513 // RFC 8489 §14.3: USERNAME is < 513 bytes.
	maxUsersFileSize = 16 << 20
	maxSecretLen     = 4096
)

// RESTCredentials returns TURN REST API credentials (draft-uberti-behave-turn-rest-00 §2.2) valid until now+ttl:
// username is "<unix expiry>:<user>" (just "<unix expiry>" when user is empty) and password is
// base64(HMAC-SHA1(secret, username)), byte for byte what coturn's use-auth-secret/static-auth-secret,
// Prosody's mod_turn_external and ejabberd's mod_stun_disco compute.
func RESTCredentials(secret, user string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10)
	if user != "" {
		username += ":" + user
	}
	return username, restPassword(secret, username)
}

func restPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// CheckRESTCredentials reports whether password is the REST API password of username under secret and the
// credentials have not expired at now. It returns ErrCredentialsExpired, ErrBadUsername or
// ErrBadCredentials. The ICE code uses it to check XEP-0215 answers.
func CheckRESTCredentials(secret, username, password string, now time.Time) error {
	exp, _, err := parseRESTUsername(username)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(restPassword(secret, username)), []byte(password)) {
		return ErrBadCredentials
	}
	if now.Unix() > exp {
		return ErrCredentialsExpired
	}
	return nil
}

// parseRESTUsername splits "<expiry>:<user>" (the separator is ':' as in coturn's default rest-api-separator).
func parseRESTUsername(username string) (expiry int64, user string, err error) {
	ts, user, _ := strings.Cut(username, ":")
	if ts == "" || len(ts) > 19 {
		return 0, "", ErrBadUsername
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return 0, "", ErrBadUsername
		}
	}
	expiry, err = strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, "", ErrBadUsername
	}
	return expiry, user, nil
}

// longTermKey is the RFC 8489 §9.2.2 key MD5(username ":" realm ":" password) (SASLprep omitted: REST passwords
// are base64, and users-file passwords are used as written).
func longTermKey(username, realm, password string) []byte {
	h := md5.New() //nolint:gosec
	io.WriteString(h, username)
	io.WriteString(h, ":")
	io.WriteString(h, realm)
	io.WriteString(h, ":")
	io.WriteString(h, password)
	return h.Sum(nil)
}

// ReadSecrets parses shared secrets, one a line; empty lines and lines starting with '#' are skipped. Several
// secrets are accepted at once so that a secret can be rotated: add the new one, move the XMPP servers to it,
// then remove the old one.
func ReadSecrets(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, maxUsersFileSize))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if len(line) > maxSecretLen {
			return nil, fmt.Errorf("relay: secret longer than %d bytes", maxSecretLen)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("relay: read secrets: %w", err)
	}
	return out, nil
}

// ReadSecretsFile reads a secrets file (see ReadSecrets). It refuses a file readable by group or others when
// the operating system reports permissions.
func ReadSecretsFile(path string) ([]string, error) {
	b, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ReadSecrets(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("relay: secret file %s: %w", path, err)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("relay: secret file %s: no secret in it", path)
	}
	return s, nil
}

// ReadUsers parses static long-term users, one "user:password" a line (the first ':' separates; '#' starts a
// comment line). Usernames must not start with a digit followed by ':' or be all digits, since those are REST
// API usernames.
func ReadUsers(r io.Reader) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, maxUsersFileSize))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		u, p, ok := strings.Cut(line, ":")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("relay: users line %d: want user:password", n)
		}
		if len(u) > maxUsernameLen {
			return nil, fmt.Errorf("relay: users line %d: username too long", n)
		}
		if _, _, err := parseRESTUsername(u); err == nil {
			return nil, fmt.Errorf("relay: users line %d: %q looks like a REST API username", n, u)
		}
		users[u] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("relay: read users: %w", err)
	}
	return users, nil
}

// ReadUsersFile reads a users file (see ReadUsers).
func ReadUsersFile(path string) (map[string]string, error) {
	b, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	u, err := ReadUsers(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("relay: users file %s: %w", path, err)
	}
	return u, nil
}

// ErrInsecureFile is returned for a credentials file that group or others may read.
var ErrInsecureFile = errors.New("relay: credentials file is readable by group or others (chmod 600 it)")

func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrInsecureFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUsersFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("relay: read %s: %w", path, err)
	}
	if len(b) > maxUsersFileSize {
		return nil, fmt.Errorf("relay: %s larger than %d bytes", path, maxUsersFileSize)
	}
	return b, nil
}

// credentials are the secrets and static users in force; SetCredentials swaps them as a whole.
type credentials struct {
	secrets []string
	users   map[string]string
}

func newCredentials(secrets []string, users map[string]string) *credentials {
	c := &credentials{secrets: append([]string(nil), secrets...), users: make(map[string]string, len(users))}
	for u, p := range users {
		c.users[u] = p
	}
	return c
}

// SetCredentials replaces the REST API secrets and the static users, for example after the operator edited
// the secret or users file (the CLI calls it on SIGHUP). Requests authenticated from then on use the new
// ones: credentials made with a removed secret or for a removed user get 401 on their next request, including
// the refreshes and permissions of allocations they already hold. It returns an error wrapping
// ErrInvalidConfig, and keeps the old credentials, when there would be none or a secret is empty.
func (s *Server) SetCredentials(secrets []string, users map[string]string) error {
	if len(secrets) == 0 && len(users) == 0 {
		return fmt.Errorf("%w: no credentials: give a REST API secret or static users", ErrInvalidConfig)
	}
	for i, sec := range secrets {
		if sec == "" {
			return fmt.Errorf("%w: secret %d is empty", ErrInvalidConfig, i)
		}
	}
	s.creds.Store(newCredentials(secrets, users))
	return nil
}
