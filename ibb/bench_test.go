package ibb

import (
	"fmt"
	"io"
	"testing"
)

// BenchmarkIBB measures throughput over xjtest (no server, no TCP: the cost
// is XML and base64 on both sides). MB/s is reported through SetBytes.
func BenchmarkIBB(b *testing.B) {
	for _, bs := range []int{4096, 8192, 32768, 65535} {
		b.Run(fmt.Sprintf("block=%d", bs), func(b *testing.B) {
			e := newEnv(b, WithBlockSize(bs))
			defer e.close()
			a, r := e.open(b, "bench", 0)
			done := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, r)
				done <- err
			}()
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := a.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			a.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Close()
		})
	}
}
