package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseRate parses --rate-limit: bytes per second, with an optional k, M or
// G suffix (powers of 1000) and an optional "B/s" or "/s" ("20M", "20MB/s",
// "512k"). "" and "0" mean no cap.
func parseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "/s")
	t = strings.TrimSuffix(t, "B")
	if t == "" {
		return 0, nil
	}
	mult := int64(1)
	switch t[len(t)-1] {
	case 'k', 'K':
		mult = 1e3
	case 'M':
		mult = 1e6
	case 'G':
		mult = 1e9
	}
	if mult > 1 {
		t = t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) > 1e12 {
		return 0, fmt.Errorf("bad --rate-limit %q (want bytes per second, e.g. 20M)", s)
	}
	return int64(v * float64(mult)), nil
}
