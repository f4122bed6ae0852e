// Package socks5bench measures SOCKS5 bytestream (XEP-0065/XEP-0260) file
// transfer throughput on loopback against baselines measured in the same
// run:
//
//   - direct: a file sent with the real file-transfer path (two engines,
//     filetransfer.App.Send, SHA-256 in-line on both sides, the receiver's
//     safe Store) over a direct SOCKS5 candidate on 127.0.0.1, against a raw
//     TCP copy of the same bytes over loopback with SHA-256 on both sides
//     (file → hash+socket, socket → hash+file);
//   - proxy: the same transfer through Prosody's mod_proxy65 (no direct
//     candidates), against a plain SOCKS5 copy through the same proxy made
//     with our minimal client (socks5.Dialer + socks5.Activate), with the same
//     hashing and file writes.
//
// It is a measurement, not a test of correctness beyond the hashes matching.
// Sender and receiver run in one process, so the peak RSS reported (VmHWM,
// reset through /proc/self/clear_refs before each case) covers both sides
// plus the harness; peak Go heap is sampled from runtime/metrics.
//
// Run (needs the Debian prosody package; everything stays on 127.0.0.1):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./bench/socks5
//
// Each benchmark runs XJINGLE_BENCH_ROUNDS rounds (default 3) of the
// baseline and the file transfer, alternating which goes first, with
// sync(2) before every timed case so that one case's dirty pages are not
// written back during the next; it reports the medians, their ratio, and
// every round.
//
// XJINGLE_BENCH_SIZE (bytes, default 1 GiB) changes the file size;
// XJINGLE_BENCH_FSYNC=1 makes the baselines fsync what they received before
// the clock stops, as the receiver's safe Store does (it syncs before the
// file gets its final name); XJINGLE_BENCH_DIR puts the payload and the
// received files in that directory instead of the test's temporary one
// (e.g. /dev/shm, to take the disk out of both sides); XJ_TRACE=1 logs
// both engines at debug level to stderr.
package socks5bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xjingle/xjingle/client"
	"github.com/xjingle/xjingle/internal/engine"
	"github.com/xjingle/xjingle/internal/testbed"
	"github.com/xjingle/xjingle/jingle/filetransfer"
	"github.com/xjingle/xjingle/socks5"
	"golang.org/x/sys/unix"
	"mellium.im/xmpp/jid"
)

// copyBuf is the buffer the baselines copy with (the same order as the
// file-transfer path's).
const copyBuf = 256 << 10

func benchSize(b *testing.B) int64 {
	if s := os.Getenv("XJINGLE_BENCH_SIZE"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("XJINGLE_BENCH_SIZE=%q: want a positive byte count", s)
		}
		return n
	}
	return 1 << 30
}

func benchRounds(b *testing.B) int {
	if s := os.Getenv("XJINGLE_BENCH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("XJINGLE_BENCH_ROUNDS=%q: want a positive count", s)
		}
		return n
	}
	return 3
}

// benchDir returns a fresh directory for payload and received files: under
// XJINGLE_BENCH_DIR if set, else the test's temporary directory.
func benchDir(b *testing.B) string {
	b.Helper()
	base := os.Getenv("XJINGLE_BENCH_DIR")
	if base == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(base, "xjbench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// payload writes a random file of size bytes and returns its path and hex
// SHA-256.
func payload(b *testing.B, size int64) (string, string) {
	b.Helper()
	path := filepath.Join(benchDir(b), "payload.bin")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rand.Reader, size); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, hex.EncodeToString(h.Sum(nil))
}

type pairOpts struct {
	noDirect bool // proxy case: no direct candidates on either side
	noProxy  bool // direct case: no proxy candidate
}

func pair(b *testing.B, bed *testbed.Bed, name string, inbox string, po pairOpts) (alice, bob *engine.Engine) {
	b.Helper()
	a := bed.AddUser(b, "alice"+name)
	o := bed.AddUser(b, "bob"+name)
	bed.Subscribe(b, a.JID, o.JID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mk := func(acct testbed.Account, st *filetransfer.Store, opts ...filetransfer.Option) *engine.Engine {
		e, err := engine.New(ctx, engine.Config{
			Client:             client.Config{JID: jid.MustParse(acct.JID), Password: acct.Password, Server: bed.C2SAddr, CAFile: bed.CAFile},
			Store:              st,
			AppOpts:            opts,
			Interfaces:         []string{"lo"},
			NoDirect:           po.noDirect,
			NoProxy:            po.noProxy,
			NoExternalServices: true,
			Logger:             traceLog(acct.JID),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.Close() })
		return e
	}
	bob = mk(o, &filetransfer.Store{Dir: inbox}, filetransfer.WithAcceptPolicy(filetransfer.AcceptAll))
	alice = mk(a, nil)
	return alice, bob
}

// memPeak samples the Go heap while a case runs and reads VmHWM after it.
type memPeak struct {
	stop     chan struct{}
	done     chan struct{}
	heapPeak uint64
}

func startMem() *memPeak {
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	runtime.GC()
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > m.heapPeak {
				m.heapPeak = v
			}
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// end stops sampling and returns the peak heap and VmHWM in MiB (VmHWM -1
// when /proc is not there).
func (m *memPeak) end() (heapMiB, hwmMiB float64) {
	close(m.stop)
	<-m.done
	hwm := -1.0
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err == nil {
					hwm = kb / 1024
				}
			}
		}
	}
	return float64(m.heapPeak) / (1 << 20), hwm
}

// baselineFsync reports whether XJINGLE_BENCH_FSYNC asks the baselines to
// fsync the received file before they stop the clock, as the file-transfer
// receiver's safe Store does before it gives the file its final name.
func baselineFsync() bool { return os.Getenv("XJINGLE_BENCH_FSYNC") == "1" }

// baseName names a baseline, marking the fsync variant.
func baseName(name string) string {
	if baselineFsync() {
		return name + " + fsync"
	}
	return name
}

// hashedCopy is the baselines' two ends: src (a file) → hash → w on the
// sending side, r → hash+file on the receiving side. It returns the two
// hex digests. Like the file-transfer path, the receiver reads exactly size
// bytes (it knows the size from the offer) and the sender half-closes at
// end of file and closes only after the receiver is done: mod_proxy65
// closes the other side as soon as one side disconnects, dropping what it
// still buffers.
func hashedCopy(b *testing.B, src string, size int64, w io.WriteCloser, r io.Reader, dst string) (sent, got string) {
	b.Helper()
	var wg sync.WaitGroup
	var recvErr error
	var recvHash hash.Hash = sha256.New()
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err := os.Create(dst)
		if err != nil {
			recvErr = err
			return
		}
		defer out.Close()
		_, recvErr = io.CopyBuffer(io.MultiWriter(out, recvHash), io.LimitReader(r, size), make([]byte, copyBuf))
		if recvErr == nil && baselineFsync() {
			recvErr = out.Sync()
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	sendHash := sha256.New()
	_, err = io.CopyBuffer(w, io.TeeReader(in, sendHash), make([]byte, copyBuf))
	in.Close()
	// Half-close as the file-transfer sender does at end of file: under
	// Prosody's epoll backend mod_proxy65 forwards the last bytes only on
	// more input or EOF.
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	wg.Wait()
	if err != nil || recvErr != nil {
		b.Fatalf("baseline copy: send %v, receive %v", err, recvErr)
	}
	return hex.EncodeToString(sendHash.Sum(nil)), hex.EncodeToString(recvHash.Sum(nil))
}

type result struct {
	name    string
	seconds float64
	heap    float64
	hwm     float64
}

func (r result) mbps(size int64) float64 { return float64(size) / 1e6 / r.seconds }

// runRounds runs base and xfer n times each, alternating which goes first,
// with sync(2) before every case so that the previous case's dirty pages
// are written back before the clock starts.
func runRounds(n int, base, xfer func() result) (bases, xfers []result) {
	one := func(f func() result, into *[]result) {
		unix.Sync()
		*into = append(*into, f())
	}
	for i := range n {
		if i%2 == 0 {
			one(base, &bases)
			one(xfer, &xfers)
		} else {
			one(xfer, &xfers)
			one(base, &bases)
		}
	}
	return bases, xfers
}

// median returns the round with the median time (the slower of the two
// middle ones for an even count), with the peak memory of all rounds.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.seconds < b.seconds:
			return -1
		case a.seconds > b.seconds:
			return 1
		}
		return 0
	})
	m := s[len(s)/2]
	for _, r := range rs {
		m.heap, m.hwm = max(m.heap, r.heap), max(m.hwm, r.hwm)
	}
	return m
}

func report(b *testing.B, size int64, bases, xfers []result) {
	base, real := median(bases), median(xfers)
	ratio := real.mbps(size) / base.mbps(size)
	b.ReportMetric(base.mbps(size), "base-MB/s")
	b.ReportMetric(real.mbps(size), "xfer-MB/s")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(real.hwm, "xfer-VmHWM-MiB")
	b.ReportMetric(real.heap, "xfer-heap-MiB")
	fmt.Printf("%s: %d bytes, %d rounds (medians; peak memory over all rounds)\n", b.Name(), size, len(xfers))
	for _, rs := range [][]result{bases, xfers} {
		r := median(rs)
		var all []string
		for _, x := range rs {
			all = append(all, fmt.Sprintf("%.1f", x.mbps(size)))
		}
		fmt.Printf("  %-28s %8.1f MB/s  peak heap %6.1f MiB  VmHWM %6.1f MiB  rounds: %s\n",
			r.name, r.mbps(size), r.heap, r.hwm, strings.Join(all, " "))
	}
	fmt.Printf("  ratio %.3f (target >= 0.9)\n", ratio)
}

// send runs one file transfer with the real path and checks both hashes.
func send(b *testing.B, alice, bob *engine.Engine, src, sum, inbox string) result {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	peer, err := alice.ResolvePeer(ctx, bob.Client.LocalJID().String())
	if err != nil {
		b.Fatal(err)
	}
	m := startMem()
	start := time.Now()
	res, err := alice.App.Send(ctx, alice.Manager, peer, src, filetransfer.SendOptions{Transport: socks5.NS, RungTimeout: -1})
	el := time.Since(start)
	heap, hwm := m.end()
	if err != nil || !res.Verified || res.SHA256 != sum {
		b.Fatalf("send: %v (%+v)", err, res)
	}
	if res.Transport != socks5.NS {
		b.Fatalf("carried by %s, want %s", res.Transport, socks5.NS)
	}
	got, err := fileSHA256(filepath.Join(inbox, filepath.Base(src)))
	if err != nil || got != sum {
		b.Fatalf("received file: %s, %v; want %s", got, err, sum)
	}
	return result{name: "file transfer (engine)", seconds: el.Seconds(), heap: heap, hwm: hwm}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func clearDir(b *testing.B, dir string) {
	b.Helper()
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDirect: direct SOCKS5 on loopback vs raw TCP + SHA-256.
func BenchmarkDirect(b *testing.B) {
	size := benchSize(b)
	bed := testbed.Start(b, testbed.WithoutProxy65())
	src, sum := payload(b, size)
	inbox := filepath.Join(benchDir(b), "inbox")
	clearDir(b, inbox)
	alice, bob := pair(b, bed, "d", inbox, pairOpts{noProxy: true})
	scratch := benchDir(b)

	// Baseline: raw TCP over loopback.
	base := func() result {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		acc := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				close(acc)
				return
			}
			acc <- c
		}()
		m := startMem()
		start := time.Now()
		cw, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		cr, ok := <-acc
		l.Close()
		if !ok {
			b.Fatal("accept failed")
		}
		s1, s2 := hashedCopy(b, src, size, cw, cr, filepath.Join(scratch, "raw.bin"))
		el := time.Since(start)
		cw.Close()
		cr.Close()
		heap, hwm := m.end()
		if s1 != sum || s2 != sum {
			b.Fatalf("baseline hashes %s %s, want %s", s1, s2, sum)
		}
		os.Remove(filepath.Join(scratch, "raw.bin"))
		return result{name: baseName("raw TCP + sha256"), seconds: el.Seconds(), heap: heap, hwm: hwm}
	}
	compare(b, size, base, alice, bob, src, sum, inbox)
}

// BenchmarkProxy65: SOCKS5 through Prosody's mod_proxy65 vs a plain SOCKS5
// copy through the same proxy.
func BenchmarkProxy65(b *testing.B) {
	benchViaProxy(b, testbed.Start(b), nil, "p", "plain SOCKS5 via proxy65")
}

// benchViaProxy measures file transfers through the SOCKS5 proxy the
// engines discover on bed (want, if not nil, is its JID) against a plain
// SOCKS5 copy through the same proxy; tag names the users and sessions.
func benchViaProxy(b *testing.B, bed *testbed.Bed, want *jid.JID, tag, baseLabel string) {
	size := benchSize(b)
	src, sum := payload(b, size)
	inbox := filepath.Join(benchDir(b), "inbox")
	clearDir(b, inbox)
	alice, bob := pair(b, bed, tag, inbox, pairOpts{noDirect: true})
	if alice.Proxy == nil || want != nil && !alice.Proxy.JID.Equal(*want) {
		b.Fatalf("engine found proxy %+v, want %v", alice.Proxy, want)
	}
	scratch := benchDir(b)

	round := 0
	base := func() result {
		round++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		sid := fmt.Sprintf("%sbench%d", tag, round)
		a, t := alice.Client.LocalJID(), bob.Client.LocalJID()
		dst := socks5.DstAddr(sid, a, t)
		var d socks5.Dialer
		m := startMem()
		start := time.Now()
		// XEP-0065 §6.3: the target connects, then the requester, which
		// activates the stream.
		cr, err := d.Dial(ctx, alice.Proxy.Addr(), dst)
		if err != nil {
			b.Fatal(err)
		}
		cw, err := d.Dial(ctx, alice.Proxy.Addr(), dst)
		if err != nil {
			b.Fatal(err)
		}
		if err := socks5.Activate(ctx, alice.Client, alice.Proxy.JID, sid, t); err != nil {
			b.Fatal(err)
		}
		s1, s2 := hashedCopy(b, src, size, cw, cr, filepath.Join(scratch, "raw.bin"))
		el := time.Since(start)
		cw.Close()
		cr.Close()
		heap, hwm := m.end()
		if s1 != sum || s2 != sum {
			b.Fatalf("baseline hashes %s %s, want %s", s1, s2, sum)
		}
		os.Remove(filepath.Join(scratch, "raw.bin"))
		return result{name: baseName(baseLabel), seconds: el.Seconds(), heap: heap, hwm: hwm}
	}
	compare(b, size, base, alice, bob, src, sum, inbox)
}

// compare runs the rounds of base against the real file transfer from
// alice to bob and reports them.
func compare(b *testing.B, size int64, base func() result, alice, bob *engine.Engine, src, sum, inbox string) {
	xfer := func() result {
		r := send(b, alice, bob, src, sum, inbox)
		clearDir(b, inbox)
		return r
	}
	b.SetBytes(size)
	var bases, xfers []result
	for i := 0; i < b.N; i++ {
		bb, xx := runRounds(benchRounds(b), base, xfer)
		bases, xfers = append(bases, bb...), append(xfers, xx...)
	}
	report(b, size, bases, xfers)
}

// traceLog returns a debug logger for one engine when XJ_TRACE is set.
func traceLog(who string) *slog.Logger {
	if os.Getenv("XJ_TRACE") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who[:3])
}
