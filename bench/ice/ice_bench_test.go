// Package icebench measures file throughput over the ICE rung (a WebRTC
// data channel, XEP-0343, on loopback) against baselines moving the same
// bytes in the same run, each with SHA-256 on both sides:
//
//   - tcp: a raw loopback TCP copy;
//   - pion: a bare Pion data channel pair (detached, reliable, ordered) with
//     the same SCTP settings and message size, flow-controlled by
//     BufferedAmountLowThreshold as Pion's examples do;
//   - ice: the transports/ice Jingle transport (two jingle.Managers on an
//     in-memory XMPP network, the data channel on 127.0.0.1), its *ice.Conn
//     written and read as the file-transfer application does;
//   - socks5: the direct SOCKS5 rung (XEP-0260) through the same harness,
//     a candidate on 127.0.0.1.
//
// Besides MB/s each case reports MB per CPU second of the whole process
// (both sides): on a shared machine it varies less than wall-clock rates.
//
// It is a measurement, not a test of correctness beyond the hashes
// matching. Run (loopback only; no server needed):
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/ice
//
// XJINGLE_BENCH_SIZE (bytes, default 128 MiB) changes the size;
// XJINGLE_BENCH_MSG (bytes, default the ice package's) the message size.
package icebench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	pice "github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/socks5"
	"github.com/xjingle/xjingle/transports/ice"
	"mellium.im/xmpp/jid"
)

func envInt(b *testing.B, name string, def int64) int64 {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive byte count", name, s)
		}
		return n
	}
	return def
}

// block is the random data every case sends, repeated: generating 128 MiB
// of randomness would cost more than some of the copies measured.
var block = func() []byte {
	b := make([]byte, 1<<20)
	rand.Read(b)
	return b
}()

// source yields left bytes of block, repeated.
type source struct{ left, off int64 }

func (s *source) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	i := s.off % int64(len(block))
	n := copy(p, block[i:min(int64(len(block)), i+s.left)])
	s.left -= int64(n)
	s.off += int64(n)
	return n, nil
}

func wantSum(size int64) [32]byte {
	h := sha256.New()
	io.Copy(h, &source{left: size})
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

const copyBuf = 256 << 10

// results keeps each case's MB/s for the summary.
var (
	resMu   sync.Mutex
	results = map[string]float64{}
)

// cpuTime is the process's user+system CPU time so far: on a shared
// machine, MB per CPU second is steadier than MB/s.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func record(b *testing.B, name string, size int64, d, cpu time.Duration) {
	mbs := float64(size) / d.Seconds() / 1e6
	b.ReportMetric(mbs, "MB/s")
	if cpu > 0 {
		b.ReportMetric(float64(size)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
	b.ReportMetric(0, "ns/op")
	resMu.Lock()
	results[name] = mbs
	resMu.Unlock()
}

// hashedCopy sends size bytes over w (hashing them) while readSide hashes
// what arrives; it returns the time from the first byte to the last byte
// hashed by the receiver.
func hashedCopy(b *testing.B, size int64, w io.Writer, closeWrite func() error, r io.Reader) (time.Duration, time.Duration) {
	b.Helper()
	want := wantSum(size)
	cpu0 := cpuTime()
	got := make(chan [32]byte, 1)
	errc := make(chan error, 1)
	start := time.Now()
	go func() {
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, make([]byte, copyBuf))
		if err == nil && n != size {
			err = fmt.Errorf("read %d bytes, want %d", n, size)
		}
		errc <- err
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(w, h), &source{left: size}, make([]byte, copyBuf)); err != nil {
		b.Fatalf("write: %v", err)
	}
	if err := closeWrite(); err != nil {
		b.Fatalf("close write: %v", err)
	}
	if err := <-errc; err != nil {
		b.Fatalf("read: %v", err)
	}
	d := time.Since(start)
	cpu := cpuTime() - cpu0
	if s := <-got; s != want {
		b.Fatal("hash mismatch")
	}
	return d, cpu
}

func BenchmarkICE(b *testing.B) {
	size := envInt(b, "XJINGLE_BENCH_SIZE", 128<<20)
	msg := int(envInt(b, "XJINGLE_BENCH_MSG", 0))
	b.Run("tcp", func(b *testing.B) { benchTCP(b, size) })
	b.Run("pion", func(b *testing.B) { benchPion(b, size, msg) })
	b.Run("ice", func(b *testing.B) { benchICE(b, size, msg) })
	b.Run("socks5", func(b *testing.B) { benchSOCKS5(b, size) })
	resMu.Lock()
	defer resMu.Unlock()
	if results["ice"] > 0 && results["pion"] > 0 && results["tcp"] > 0 && results["socks5"] > 0 {
		fmt.Printf("%d MiB: tcp %.1f MB/s, socks5 rung %.1f MB/s, bare pion data channel %.1f MB/s, ice rung %.1f MB/s; ice/pion %.2f, ice/socks5 %.2f, ice/tcp %.2f\n",
			size>>20, results["tcp"], results["socks5"], results["pion"], results["ice"],
			results["ice"]/results["pion"], results["ice"]/results["socks5"], results["ice"]/results["tcp"])
	}
}

func benchTCP(b *testing.B, size int64) {
	for range b.N {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				accepted <- nil
				return
			}
			accepted <- c
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s := <-accepted
		ln.Close()
		d, cpu := hashedCopy(b, size, c, c.(*net.TCPConn).CloseWrite, s)
		c.Close()
		s.Close()
		record(b, "tcp", size, d, cpu)
	}
}

// pionAPI is a Pion API confined to 127.0.0.1 with the settings the ice
// package uses.
func pionAPI() *webrtc.API {
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(pice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetSCTPMaxMessageSize(256 << 10)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// benchPion moves the bytes over a bare Pion pair: the writer sends msg
// byte messages while BufferedAmount is under 1 MiB and waits for
// OnBufferedAmountLow (threshold 512 KiB) otherwise.
func benchPion(b *testing.B, size int64, msg int) {
	if msg == 0 {
		msg = 64 << 10
	}
	for range b.N {
		api := pionAPI()
		a, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		z, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		opened := make(chan *webrtc.DataChannel, 2)
		dc, err := a.CreateDataChannel("bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		dc.OnOpen(func() { opened <- dc })
		z.OnDataChannel(func(d *webrtc.DataChannel) { d.OnOpen(func() { opened <- d }) })
		signal(b, a, z)
		var ad, zd *webrtc.DataChannel
		for range 2 {
			select {
			case d := <-opened:
				if d == dc {
					ad = d
				} else {
					zd = d
				}
			case <-time.After(20 * time.Second):
				b.Fatal("data channel did not open")
			}
		}
		araw, err := ad.Detach()
		if err != nil {
			b.Fatal(err)
		}
		zraw, err := zd.Detach()
		if err != nil {
			b.Fatal(err)
		}
		const high = 1 << 20
		low := make(chan struct{}, 1)
		ad.SetBufferedAmountLowThreshold(high / 2)
		ad.OnBufferedAmountLow(func() {
			select {
			case low <- struct{}{}:
			default:
			}
		})
		w := writerFunc(func(p []byte) (int, error) {
			n := 0
			for len(p) > 0 {
				for ad.BufferedAmount() > high {
					select {
					case <-low:
					case <-time.After(10 * time.Millisecond):
					}
				}
				m := min(len(p), msg)
				if _, err := araw.Write(p[:m]); err != nil {
					return n, err
				}
				n += m
				p = p[m:]
			}
			return n, nil
		})
		closeWrite := func() error {
			for ad.BufferedAmount() > 0 {
				time.Sleep(time.Millisecond)
			}
			return araw.Close()
		}
		r := readerFunc(func(p []byte) (int, error) {
			// Detached reads need a buffer for a whole message.
			if len(p) < 256<<10 {
				return 0, io.ErrShortBuffer
			}
			n, err := zraw.Read(p)
			if err != nil && n == 0 {
				return 0, io.EOF
			}
			return n, nil
		})
		d, cpu := hashedCopy(b, size, w, closeWrite, r)
		a.Close()
		z.Close()
		record(b, "pion", size, d, cpu)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// signal does the offer/answer with complete candidate lists.
func signal(b *testing.B, a, z *webrtc.PeerConnection) {
	b.Helper()
	offer, err := a.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	ga := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		b.Fatal(err)
	}
	<-ga
	if err := z.SetRemoteDescription(*a.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	answer, err := z.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	gz := webrtc.GatheringCompletePromise(z)
	if err := z.SetLocalDescription(answer); err != nil {
		b.Fatal(err)
	}
	<-gz
	if err := a.SetRemoteDescription(*z.LocalDescription()); err != nil {
		b.Fatal(err)
	}
}

const nsBench = "urn:xjingle:bench:0"

// sinkApp accepts a session and hands its content's stream over.
type sinkApp struct{ conns chan net.Conn }

func (sinkApp) Namespace() string { return nsBench }

func (a sinkApp) HandleSession(ctx context.Context, s *jingle.Session) {
	if err := s.Accept(ctx); err != nil {
		return
	}
	c, err := s.Contents()[0].Conn(ctx)
	if err != nil {
		return
	}
	a.conns <- c
}

func benchICE(b *testing.B, size int64, msg int) {
	opts := []ice.Option{
		ice.WithInterfaces("lo"),
		ice.WithIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }),
		ice.WithUDP4Only(),
	}
	if msg > 0 {
		opts = append(opts, ice.WithMessageSize(msg))
	}
	benchJingle(b, "ice", size, ice.NSDataChannel, func() (jingle.TransportFactory, error) { return ice.NewFactory(opts...) })
}

// benchSOCKS5 is the direct SOCKS5 rung (XEP-0260) on 127.0.0.1 through
// the same harness.
func benchSOCKS5(b *testing.B, size int64) {
	benchJingle(b, "socks5", size, socks5.NS, func() (jingle.TransportFactory, error) {
		return socks5.NewFactory(socks5.WithAddresses(netip.MustParseAddr("127.0.0.1")))
	})
}

// benchJingle moves the bytes over a content of transport ns between two
// Managers on an in-memory XMPP network.
func benchJingle(b *testing.B, name string, size int64, ns string, factory func() (jingle.TransportFactory, error)) {
	for range b.N {
		network := xjtest.NewNetwork()
		mk := func(j string, app jingle.Application) (*jingle.Manager, func()) {
			sig := network.Add(j)
			f, err := factory()
			if err != nil {
				b.Fatal(err)
			}
			m, err := jingle.NewManager(sig, jingle.WithApplication(app), jingle.WithTransport(f))
			if err != nil {
				b.Fatal(err)
			}
			return m, func() { m.Close(); sig.Close() }
		}
		sink := sinkApp{conns: make(chan net.Conn, 1)}
		alice, closeA := mk("alice@bench.test/a", sinkApp{conns: make(chan net.Conn, 1)})
		_, closeB := mk("bob@bench.test/b", sink)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		s, err := alice.Initiate(ctx, jid.MustParse("bob@bench.test/b"), jingle.ContentSpec{
			Name: "f", Senders: jingle.SendersInitiator, Transport: ns,
			Description: jingle.Element{XMLName: xml.Name{Space: nsBench, Local: "description"}},
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.WaitActive(ctx); err != nil {
			b.Fatal(err)
		}
		conn, err := s.Content("f").Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var rconn net.Conn
		select {
		case rconn = <-sink.conns:
		case <-ctx.Done():
			b.Fatal("no stream on the receiving side")
		}
		cw, ok := conn.(interface{ CloseWrite() error })
		if !ok {
			b.Fatalf("%T has no CloseWrite", conn)
		}
		d, cpu := hashedCopy(b, size, conn, cw.CloseWrite, rconn)
		record(b, name, size, d, cpu)
		conn.Close()
		rconn.Close()
		s.Terminate(ctx, jingle.Reason{Condition: jingle.ReasonSuccess})
		cancel()
		closeA()
		closeB()
	}
}
