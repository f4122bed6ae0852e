package client

import (
	"context"
	"encoding/xml"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Info is a disco#info answer (XEP-0030 §3.1).
type Info struct {
	Identities []Identity `json:"identities"`
	Features   []string   `json:"features"`
}

// Item is a disco#items entry (XEP-0030 §4).
type Item struct {
	JID  jid.JID `json:"jid"`
	Node string  `json:"node,omitempty"`
	Name string  `json:"name,omitempty"`
}

type discoInfoXML struct {
	XMLName    xml.Name   `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string     `xml:"node,attr,omitempty"`
	Identities []Identity `xml:"identity"`
	Features   []struct {
		Var string `xml:"var,attr"`
	} `xml:"feature"`
	Forms []struct {
		XMLName xml.Name
	} `xml:"jabber:x:data x"`
}

// registerBuiltins answers disco#info, ping and version.
func (c *Client) registerBuiltins() {
	c.HandleIQ(xml.Name{Space: NSDiscoInfo, Local: "query"}, c.handleDiscoInfo)
	c.HandleIQ(xml.Name{Space: NSPing, Local: "ping"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		reply(nil, nil)
	})
	c.HandleIQ(xml.Name{Space: NSVersion, Local: "query"}, func(iq *jingle.IQ, reply jingle.ReplyFunc) {
		if iq.Type != "get" {
			reply(nil, jingle.ErrBadRequest)
			return
		}
		v := "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		out, _ := xml.Marshal(struct {
			XMLName xml.Name `xml:"jabber:iq:version query"`
			Name    string   `xml:"name"`
			Version string   `xml:"version"`
		}{Name: "xjingle", Version: v})
		reply(out, nil)
	})
}

func (c *Client) handleDiscoInfo(iq *jingle.IQ, reply jingle.ReplyFunc) {
	if iq.Type != "get" {
		reply(nil, jingle.ErrBadRequest)
		return
	}
	var q discoInfoXML
	if err := xml.Unmarshal(iq.Payload, &q); err != nil {
		reply(nil, jingle.ErrBadRequest)
		return
	}
	c.mu.Lock()
	ver := c.ver
	features := slices.Clone(c.features)
	c.mu.Unlock()
	// XEP-0115 §6.2: a query to node#ver is answered like the plain one.
	if q.Node != "" && q.Node != CapsNode+"#"+ver {
		reply(nil, jingle.ErrItemNotFound)
		return
	}
	out := discoInfoXML{Node: q.Node, Identities: []Identity{identity}}
	for _, f := range features {
		out.Features = append(out.Features, struct {
			Var string `xml:"var,attr"`
		}{f})
	}
	b, err := xml.Marshal(out)
	reply(b, err)
}

// DiscoInfo queries an entity's identities and features (XEP-0030 §3).
func (c *Client) DiscoInfo(ctx context.Context, to jid.JID) (Info, error) {
	info, _, err := c.discoInfo(ctx, to, "")
	return info, err
}

func (c *Client) discoInfo(ctx context.Context, to jid.JID, node string) (Info, bool, error) {
	q, _ := xml.Marshal(discoInfoXML{Node: node})
	res, err := c.SendIQ(ctx, to, "get", q)
	if err != nil {
		return Info{}, false, fmt.Errorf("client: disco#info %s: %w", to, err)
	}
	var ans discoInfoXML
	if err := xml.Unmarshal(res, &ans); err != nil {
		return Info{}, false, fmt.Errorf("client: disco#info %s: %w", to, err)
	}
	info := Info{Identities: ans.Identities}
	for _, f := range ans.Features {
		info.Features = append(info.Features, f.Var)
	}
	return info, len(ans.Forms) > 0, nil
}

// DiscoItems lists an entity's items (XEP-0030 §4).
func (c *Client) DiscoItems(ctx context.Context, to jid.JID) ([]Item, error) {
	res, err := c.SendIQ(ctx, to, "get", []byte(`<query xmlns="`+NSDiscoItem+`"/>`))
	if err != nil {
		return nil, fmt.Errorf("client: disco#items %s: %w", to, err)
	}
	var ans struct {
		Items []struct {
			JID  string `xml:"jid,attr"`
			Node string `xml:"node,attr"`
			Name string `xml:"name,attr"`
		} `xml:"item"`
	}
	if err := xml.Unmarshal(res, &ans); err != nil {
		return nil, fmt.Errorf("client: disco#items %s: %w", to, err)
	}
	var items []Item
	for _, it := range ans.Items {
		j, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		items = append(items, Item{JID: j, Node: it.Node, Name: it.Name})
	}
	return items, nil
}

// PeerFeatures implements jingle.FeatureQuerier: the features of a full JID,
// from the caps cache when its presence carried a verified caps hash, else by
// a disco#info query.
func (c *Client) PeerFeatures(ctx context.Context, peer jid.JID) ([]string, error) {
	p, ok := c.pres.get(peer)
	if ok && p.capsHash == "sha-1" && p.capsVer != "" {
		if f, ok := c.caps.get(p.capsVer); ok {
			return slices.Clone(f), nil // callers may modify theirs
		}
		node := ""
		if p.capsNode != "" {
			node = p.capsNode + "#" + p.capsVer
		}
		info, forms, err := c.discoInfo(ctx, peer, node)
		if err == nil {
			// XEP-0115 §5.4: cache only a well-formed answer that
			// hashes to the ver.
			if !forms && capsWellFormed(info.Identities, info.Features) &&
				capsVer(info.Identities, info.Features) == p.capsVer {
				c.caps.put(p.capsVer, slices.Clone(info.Features))
			}
			return info.Features, nil
		}
	}
	info, err := c.DiscoInfo(ctx, peer)
	if err != nil {
		return nil, err
	}
	return info.Features, nil
}

// Resolve returns the resources of peer that support feature, best first. A
// full JID is checked and returned alone. For a bare JID it waits up to
// wait (default 3 s, bounded by ctx) for presence to arrive after login.
func (c *Client) Resolve(ctx context.Context, peer jid.JID, feature string) ([]jid.JID, error) {
	if peer.Resourcepart() != "" {
		fs, err := c.PeerFeatures(ctx, peer)
		if err != nil {
			if se := (*jingle.StanzaError)(nil); asStanza(err, &se) {
				return nil, fmt.Errorf("%w: %s (%s)", ErrPeerOffline, peer, se.Condition)
			}
			return nil, err
		}
		if !slices.Contains(fs, feature) {
			return nil, fmt.Errorf("%w: %s lacks %s", ErrPeerUnsupported, peer, feature)
		}
		return []jid.JID{peer}, nil
	}
	deadline := time.NewTimer(3 * time.Second)
	defer deadline.Stop()
	for {
		res, changed := c.pres.resources(peer)
		var out []jid.JID
		for _, r := range res {
			fs, err := c.PeerFeatures(ctx, r.jid)
			if err == nil && slices.Contains(fs, feature) {
				out = append(out, r.jid)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-changed:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		if len(res) == 0 {
			return nil, fmt.Errorf("%w: %s (is it in your roster, and online?)", ErrPeerOffline, peer)
		}
		return nil, fmt.Errorf("%w: no online resource of %s offers %s", ErrPeerUnsupported, peer, feature)
	}
}
