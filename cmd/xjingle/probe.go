package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/transports/ice"
	"mellium.im/xmpp/jid"
)

func newProbeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "probe",
		Short: "Connect and print what the server offers for Jingle",
		Long: `Probe logs in and prints what the server offers that matters for Jingle:
its disco#info features and identities, its disco items, a SOCKS5 bytestream
proxy (XEP-0065) if any, and STUN/TURN services (XEP-0215) if any. Its ICE
section gathers candidates with those STUN/TURN servers (and --stun/--turn)
on the --interface interfaces and reports host, server-reflexive and relay
candidates, the mapped address STUN saw, and whether each TURN server
accepted the credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fc, err := g.loadFileConfig()
			if err != nil {
				return err
			}
			ec, err := g.engineConfig(fc)
			if err != nil {
				return err
			}
			acct, err := g.account(fc)
			if err != nil {
				return err
			}
			ctx, cancel, err := g.withTimeout(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			if ec.iceServers, err = g.iceServers(fc, acct); err != nil {
				return err
			}
			e, err := startEngine(ctx, acct, g.logger(), ec)
			if err != nil {
				return err
			}
			defer e.Close()
			rep := probeReport{JID: e.Client.LocalJID().String()}
			domain := e.Client.LocalJID().Domain()
			rep.Server = domain.String()
			if info, err := e.Client.DiscoInfo(ctx, domain); err != nil {
				rep.Errors = append(rep.Errors, "disco#info: "+err.Error())
			} else {
				rep.Features = info.Features
				for _, id := range info.Identities {
					rep.Identities = append(rep.Identities, fmt.Sprintf("%s/%s %s", id.Category, id.Type, id.Name))
				}
			}
			if items, err := e.Client.DiscoItems(ctx, domain); err != nil {
				rep.Errors = append(rep.Errors, "disco#items: "+err.Error())
			} else {
				for _, it := range items {
					rep.Items = append(rep.Items, it.JID.String())
				}
			}
			if sh, err := e.Client.FindProxy65(ctx); err != nil {
				rep.Errors = append(rep.Errors, "proxy65: "+err.Error())
			} else {
				rep.Proxy65 = &probeProxy{JID: sh.JID.String(), Host: sh.Host, Port: sh.Port}
			}
			if svcs, err := e.Client.ExternalServices(ctx); err != nil {
				rep.Errors = append(rep.Errors, "external services: "+err.Error())
			} else {
				for _, s := range svcs {
					rep.Services = append(rep.Services, probeService{
						Type: s.Type, Host: s.Host, Port: s.Port, Transport: s.Transport,
						Restricted: s.Restricted, HasCredentials: s.Username != "",
					})
				}
			}
			rep.ICE = probeICE(ctx, e)
			if g.json {
				return writeJSON(g.stdout, rep)
			}
			rep.print(g)
			return nil
		},
	}
}

type probeReport struct {
	JID        string          `json:"jid"`
	Server     string          `json:"server"`
	Identities []string        `json:"identities"`
	Features   []string        `json:"features"`
	Items      []string        `json:"items"`
	Proxy65    *probeProxy     `json:"proxy65"`
	Services   []probeService  `json:"external_services"`
	ICE        *probeICEReport `json:"ice"`
	Errors     []string        `json:"errors,omitempty"`
}

// iceProbeTimeout bounds the ICE section's candidate gathering.
const iceProbeTimeout = 10 * time.Second

// probeICEReport is the ICE section: what gathering found with the STUN/TURN
// servers ICE would use (XEP-0215's and --stun/--turn).
type probeICEReport struct {
	STUN []string `json:"stun"`
	*ice.ProbeReport
	Candidates []string `json:"candidates"`
	Error      string   `json:"error,omitempty"`
}

func probeICE(ctx context.Context, e *engine.Engine) *probeICEReport {
	ctx, cancel := context.WithTimeout(ctx, iceProbeTimeout)
	defer cancel()
	r := &probeICEReport{STUN: []string{}, Candidates: []string{}}
	for _, s := range e.ICEServers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "stuns:") {
				r.STUN = append(r.STUN, u)
			}
		}
	}
	rep, err := ice.Probe(ctx, e.ICEOptions...)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.ProbeReport = rep
	for _, c := range rep.Candidates {
		s := fmt.Sprintf("%s %s %s", c.Type, c.Protocol, net.JoinHostPort(c.IP, strconv.Itoa(int(c.Port))))
		if c.RelAddr != "" {
			s += " (from " + net.JoinHostPort(c.RelAddr, strconv.Itoa(int(c.RelPort))) + ")"
		}
		r.Candidates = append(r.Candidates, s)
	}
	return r
}

type probeProxy struct {
	JID  string `json:"jid"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

type probeService struct {
	Type           string `json:"type"`
	Host           string `json:"host"`
	Port           int    `json:"port"`
	Transport      string `json:"transport,omitempty"`
	Restricted     bool   `json:"restricted"`
	HasCredentials bool   `json:"credentials"`
}

func (r probeReport) print(g *globals) {
	w := g.stdout
	fmt.Fprintf(w, "Logged in as %s\nServer %s\n", r.JID, r.Server)
	for _, id := range r.Identities {
		fmt.Fprintf(w, "  identity  %s\n", id)
	}
	fmt.Fprintf(w, "Features (%d):\n", len(r.Features))
	for _, f := range r.Features {
		fmt.Fprintf(w, "  %s\n", f)
	}
	fmt.Fprintf(w, "Items (%d):\n", len(r.Items))
	for _, it := range r.Items {
		fmt.Fprintf(w, "  %s\n", it)
	}
	if r.Proxy65 != nil {
		fmt.Fprintf(w, "SOCKS5 proxy (XEP-0065): %s at %s:%d\n", r.Proxy65.JID, r.Proxy65.Host, r.Proxy65.Port)
	} else {
		fmt.Fprintln(w, "SOCKS5 proxy (XEP-0065): none")
	}
	if len(r.Services) == 0 {
		fmt.Fprintln(w, "STUN/TURN services (XEP-0215): none")
	} else {
		fmt.Fprintln(w, "STUN/TURN services (XEP-0215):")
		for _, s := range r.Services {
			extra := ""
			if s.Restricted {
				extra = " restricted"
			}
			if s.HasCredentials {
				extra += " with credentials"
			}
			fmt.Fprintf(w, "  %s %s:%d %s%s\n", s.Type, s.Host, s.Port, s.Transport, extra)
		}
	}
	if i := r.ICE; i != nil {
		if i.ProbeReport == nil {
			fmt.Fprintf(w, "ICE: gathering failed: %s\n", i.Error)
		} else {
			fmt.Fprintf(w, "ICE candidates: %d host, %d srflx, %d relay", i.Host, i.Srflx, i.Relay)
			if !i.Complete {
				fmt.Fprint(w, " (gathering did not finish in time)")
			}
			fmt.Fprintln(w)
			for _, c := range i.Candidates {
				fmt.Fprintf(w, "  %s\n", c)
			}
			if len(i.Mapped) > 0 {
				fmt.Fprintf(w, "  mapped address (what STUN saw): %s\n", strings.Join(i.Mapped, ", "))
			} else if len(i.STUN) > 0 {
				fmt.Fprintln(w, "  no mapped address: no STUN server answered")
			}
			for _, t := range i.TURN {
				if t.Accepted {
					fmt.Fprintf(w, "  TURN %s: credentials accepted, relayed address %s\n", t.URL, t.Relayed)
				} else {
					fmt.Fprintf(w, "  TURN %s: %s\n", t.URL, t.Err)
				}
			}
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "note: %s\n", e)
	}
}

var _ = jid.JID{}
