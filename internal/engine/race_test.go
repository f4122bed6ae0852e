//go:build race

package engine_test

// raceEnabled: the race detector slows Pion's SCTP/DTLS path about tenfold.
const raceEnabled = true
