package main

import "testing"

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"1000", 1000, true}, {"20M", 20e6, true}, {"20MB/s", 20e6, true},
		{"512k", 512e3, true}, {"1.5G", 1.5e9, true}, {"2K/s", 2000, true},
		{"fast", 0, false}, {"-1M", 0, false}, {"M", 0, false}, {"5T", 0, false},
	} {
		got, err := parseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
