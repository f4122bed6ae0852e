package client

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
)

// Namespaces of the services discovered here.
const (
	NSBytestreams = "http://jabber.org/protocol/bytestreams"
	NSExtDisco    = "urn:xmpp:extdisco:2"
)

// Streamhost is a SOCKS5 bytestream proxy (XEP-0065 §4).
type Streamhost struct {
	JID  jid.JID `json:"jid"`
	Host string  `json:"host"`
	Port int     `json:"port"`
}

// FindProxy65 finds the server's XEP-0065 proxy: a disco item of our domain
// with identity proxy/bytestreams (XEP-0065 §4), and asks it for its network
// address.
func (c *Client) FindProxy65(ctx context.Context) (Streamhost, error) {
	domain := c.local.Domain()
	items, err := c.DiscoItems(ctx, domain)
	if err != nil {
		return Streamhost{}, err
	}
	for _, it := range items {
		info, err := c.DiscoInfo(ctx, it.JID)
		if err != nil {
			continue
		}
		isProxy := slices.ContainsFunc(info.Identities, func(id Identity) bool {
			return id.Category == "proxy" && id.Type == "bytestreams"
		})
		if !isProxy {
			continue
		}
		return c.QueryStreamhost(ctx, it.JID)
	}
	return Streamhost{}, ErrNoProxy
}

// QueryStreamhost asks a proxy for its network address (XEP-0065 §4 Example 6).
func (c *Client) QueryStreamhost(ctx context.Context, proxyJID jid.JID) (Streamhost, error) {
	res, err := c.SendIQ(ctx, proxyJID, "get", []byte(`<query xmlns="`+NSBytestreams+`"/>`))
	if err != nil {
		return Streamhost{}, fmt.Errorf("client: proxy %s: %w", proxyJID, err)
	}
	var q struct {
		Hosts []struct {
			JID  string `xml:"jid,attr"`
			Host string `xml:"host,attr"`
			Port string `xml:"port,attr"`
		} `xml:"streamhost"`
	}
	if err := xml.Unmarshal(res, &q); err != nil {
		return Streamhost{}, fmt.Errorf("client: proxy %s: %w", proxyJID, err)
	}
	for _, h := range q.Hosts {
		port, err := strconv.Atoi(h.Port)
		if err != nil || port <= 0 || port > 65535 || h.Host == "" {
			continue
		}
		j, err := jid.Parse(h.JID)
		if err != nil {
			j = proxyJID
		}
		return Streamhost{JID: j, Host: h.Host, Port: port}, nil
	}
	return Streamhost{}, fmt.Errorf("client: proxy %s: no usable streamhost", proxyJID)
}

// Service is an external service (XEP-0215 §3).
type Service struct {
	Type       string    `xml:"type,attr" json:"type"` // stun, turn, turns
	Host       string    `xml:"host,attr" json:"host"`
	Port       int       `xml:"port,attr" json:"port"`
	Transport  string    `xml:"transport,attr" json:"transport,omitempty"`
	Username   string    `xml:"username,attr" json:"username,omitempty"`
	Password   string    `xml:"password,attr" json:"-"`
	Expires    time.Time `xml:"expires,attr" json:"expires,omitzero"`
	Restricted bool      `xml:"restricted,attr" json:"restricted"`
	Name       string    `xml:"name,attr" json:"name,omitempty"`
}

// ExternalServices asks our server for its STUN/TURN services (XEP-0215
// §3.1) and, for restricted ones without credentials, asks for credentials
// (§3.3).
func (c *Client) ExternalServices(ctx context.Context) ([]Service, error) {
	domain := c.local.Domain()
	res, err := c.SendIQ(ctx, domain, "get", []byte(`<services xmlns="`+NSExtDisco+`"/>`))
	if err != nil {
		return nil, fmt.Errorf("client: external services: %w", err)
	}
	var q struct {
		Services []Service `xml:"service"`
	}
	if err := xml.Unmarshal(res, &q); err != nil {
		return nil, fmt.Errorf("client: external services: %w", err)
	}
	for i, s := range q.Services {
		if !s.Restricted || s.Username != "" {
			continue
		}
		req := fmt.Sprintf(`<credentials xmlns="%s"><service host="%s" type="%s" port="%d"/></credentials>`,
			NSExtDisco, xmlEscape(s.Host), xmlEscape(s.Type), s.Port)
		cres, err := c.SendIQ(ctx, domain, "get", []byte(req))
		if err != nil {
			c.log.Debug("no credentials", "service", s.Host, "err", err)
			continue
		}
		var cq struct {
			Services []Service `xml:"service"`
		}
		if xml.Unmarshal(cres, &cq) == nil && len(cq.Services) > 0 {
			q.Services[i].Username = cq.Services[0].Username
			q.Services[i].Password = cq.Services[0].Password
			q.Services[i].Expires = cq.Services[0].Expires
		}
	}
	return q.Services, nil
}

func xmlEscape(s string) string {
	var b []byte
	buf := &byteWriter{b: b}
	_ = xml.EscapeText(buf, []byte(s))
	return string(buf.b)
}

type byteWriter struct{ b []byte }

func (w *byteWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
