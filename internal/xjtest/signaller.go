// Package xjtest is xjingle's test harness: an in-memory network of
// Signallers (no XMPP server) that routes IQs and messages between JIDs, with
// hooks to inject stanzas as if a third party had sent them.
//
// It is not for production: it has no flow control beyond Go channels and
// delivers stanzas in order per sender, like an XMPP server does.
package xjtest

import (
	"context"
	"encoding/xml"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

// Network routes stanzas between the Signallers it made.
type Network struct {
	mu    sync.Mutex
	nodes map[string]*Signaller
	ids   atomic.Uint64
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{nodes: map[string]*Signaller{}} }

// Signaller is an in-memory jingle.Signaller. Stanzas sent to it are handled
// in order by one goroutine per Signaller, like a client's read loop.
type Signaller struct {
	net      *Network
	local    jid.JID
	mu       sync.Mutex
	iqs      map[xml.Name]jingle.IQHandler
	msgs     map[xml.Name]jingle.MessageHandler
	features []string
	pending  map[string]func(iqAnswer)
	in       chan func()
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

type iqAnswer struct {
	payload []byte
	err     error
}

var _ jingle.Signaller = (*Signaller)(nil)
var _ jingle.FeatureQuerier = (*Signaller)(nil)
var _ jingle.AsyncIQSender = (*Signaller)(nil)

// Add creates a Signaller for the full JID j (e.g. "alice@example.test/a").
func (n *Network) Add(j string) *Signaller {
	s := &Signaller{
		net: n, local: jid.MustParse(j),
		iqs: map[xml.Name]jingle.IQHandler{}, msgs: map[xml.Name]jingle.MessageHandler{},
		pending: map[string]func(iqAnswer){},
		in:      make(chan func(), 1024), done: make(chan struct{}),
	}
	n.mu.Lock()
	n.nodes[s.local.String()] = s
	n.mu.Unlock()
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *Signaller) loop() {
	defer s.wg.Done()
	for {
		select {
		case f := <-s.in:
			f()
		case <-s.done:
			return
		}
	}
}

// Close stops the Signaller's read loop and waits for it. Pending SendIQ calls
// to it fail like IQs to an offline entity.
func (s *Signaller) Close() error {
	s.once.Do(func() {
		s.net.mu.Lock()
		delete(s.net.nodes, s.local.String())
		s.net.mu.Unlock()
		close(s.done)
	})
	s.wg.Wait()
	return nil
}

// LocalJID implements jingle.Signaller.
func (s *Signaller) LocalJID() jid.JID { return s.local }

// AddFeature implements jingle.Signaller.
func (s *Signaller) AddFeature(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.features {
		if f == ns {
			return
		}
	}
	s.features = append(s.features, ns)
}

// PeerFeatures implements jingle.FeatureQuerier.
func (s *Signaller) PeerFeatures(ctx context.Context, peer jid.JID) ([]string, error) {
	p := s.net.node(peer)
	if p == nil {
		return nil, jingle.ErrServiceUnavailable
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.features...), nil
}

// HandleIQ implements jingle.Signaller.
func (s *Signaller) HandleIQ(name xml.Name, h jingle.IQHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.iqs[name]; ok {
		panic(fmt.Sprintf("xjtest: duplicate IQ handler for %v", name))
	}
	s.iqs[name] = h
}

// HandleMessage implements jingle.Signaller.
func (s *Signaller) HandleMessage(name xml.Name, h jingle.MessageHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.msgs[name]; ok {
		panic(fmt.Sprintf("xjtest: duplicate message handler for %v", name))
	}
	s.msgs[name] = h
}

func (n *Network) node(j jid.JID) *Signaller {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nodes[j.String()]
}

// deliver queues f on the destination's read loop.
func (s *Signaller) deliver(f func()) bool {
	select {
	case s.in <- f:
		return true
	case <-s.done:
		return false
	}
}

func elementName(raw []byte) (xml.Name, error) {
	el, err := jingle.ParseElement(raw)
	if err != nil {
		return xml.Name{}, err
	}
	return el.XMLName, nil
}

// SendIQ implements jingle.Signaller.
func (s *Signaller) SendIQ(ctx context.Context, to jid.JID, typ string, payload []byte) ([]byte, error) {
	ch := make(chan iqAnswer, 1)
	if err := s.SendIQAsync(ctx, to, typ, payload, func(result []byte, err error) {
		ch <- iqAnswer{result, err}
	}); err != nil {
		return nil, err
	}
	a := <-ch
	return a.payload, a.err
}

// SendIQAsync implements jingle.AsyncIQSender: the IQ is queued on the
// destination's read loop before it returns; done runs on this Signaller's
// read loop (answers) or in ctx's AfterFunc goroutine (ctx ended first).
func (s *Signaller) SendIQAsync(ctx context.Context, to jid.JID, typ string, payload []byte, done func([]byte, error)) error {
	id := strconv.FormatUint(s.net.ids.Add(1), 10)
	var once sync.Once
	finish := func(a iqAnswer) {
		once.Do(func() {
			s.mu.Lock()
			delete(s.pending, id)
			s.mu.Unlock()
			done(a.payload, a.err)
		})
	}
	stop := context.AfterFunc(ctx, func() { finish(iqAnswer{err: ctx.Err()}) })
	s.mu.Lock()
	s.pending[id] = func(a iqAnswer) { stop(); finish(a) }
	s.mu.Unlock()
	if err := s.net.InjectIQ(s.local, to, id, typ, payload); err != nil {
		stop()
		claimed := false
		once.Do(func() {
			claimed = true
			s.mu.Lock()
			delete(s.pending, id)
			s.mu.Unlock()
		})
		if claimed {
			return err
		}
		return nil // done already reported ctx.Err()
	}
	return nil
}

// answer routes an IQ answer back to the sender's pending SendIQ, if any.
func (n *Network) answer(from, to jid.JID, id string, payload []byte, err error) {
	dst := n.node(to)
	if dst == nil {
		return
	}
	dst.deliver(func() {
		dst.mu.Lock()
		f := dst.pending[id]
		dst.mu.Unlock()
		if f != nil {
			f(iqAnswer{payload, err})
		}
	})
}

// InjectIQ delivers an IQ request from any JID (a third party, say) to the
// Signaller at to. Answers to a from that is not on the network are dropped.
// It returns an error only if to is not on the network or payload is not XML.
func (n *Network) InjectIQ(from, to jid.JID, id, typ string, payload []byte) error {
	dst := n.node(to)
	if dst == nil {
		return jingle.ErrServiceUnavailable.WithText("%s is offline", to)
	}
	name, err := elementName(payload)
	if err != nil {
		return err
	}
	iq := &jingle.IQ{ID: id, Type: typ, From: from, To: to, Payload: payload}
	var replied atomic.Bool
	reply := func(result []byte, err error) error {
		if !replied.CompareAndSwap(false, true) {
			return fmt.Errorf("xjtest: IQ %s answered twice", id)
		}
		if err != nil {
			err = jingle.AsStanzaError(err)
		}
		n.answer(to, from, id, result, err)
		return nil
	}
	if !dst.deliver(func() {
		dst.mu.Lock()
		h := dst.iqs[name]
		dst.mu.Unlock()
		if h == nil {
			reply(nil, jingle.ErrServiceUnavailable)
			return
		}
		h(iq, reply)
	}) {
		return jingle.ErrServiceUnavailable.WithText("%s is offline", to)
	}
	return nil
}

// SendMessage implements jingle.Signaller.
func (s *Signaller) SendMessage(ctx context.Context, to jid.JID, typ string, payload []byte) error {
	return s.net.InjectMessage(s.local, to, typ, payload)
}

// InjectMessage delivers a message from any JID to the Signaller at to; each
// top-level element of payload with a registered handler is handed to it.
func (n *Network) InjectMessage(from, to jid.JID, typ string, payload []byte) error {
	dst := n.node(to)
	if dst == nil {
		return nil // messages to offline entities vanish here
	}
	// Split payload into top-level elements.
	var els []jingle.Element
	d := xml.NewDecoder(bytesReader(payload))
	for {
		var el jingle.Element
		if err := d.Decode(&el); err != nil {
			break
		}
		els = append(els, el)
	}
	id := strconv.FormatUint(n.ids.Add(1), 10)
	dst.deliver(func() {
		for _, el := range els {
			dst.mu.Lock()
			h := dst.msgs[el.XMLName]
			dst.mu.Unlock()
			if h != nil {
				h(&jingle.Message{ID: id, Type: typ, From: from, To: to, Payload: el.Bytes()})
			}
		}
	})
	return nil
}
