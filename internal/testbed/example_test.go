package testbed_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/xjingle/xjingle/internal/testbed"
)

// New is the non-test form, as used by `xjingle demo`; in tests use
// testbed.Start(t), which also skips when prosody is not installed.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bed, err := testbed.New(ctx, "", testbed.Options{TURNAddr: "127.0.0.1:3478", TURNSecret: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	defer bed.Close()

	alice, err := bed.CreateUser("alice", testbed.RandomPassword())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := bed.CreateUser("bob", testbed.RandomPassword()); err != nil {
		log.Fatal(err)
	}
	if err := bed.SubscribeMutual("alice", "bob"); err != nil {
		log.Fatal(err)
	}
	roster, err := bed.Roster("alice")
	if err != nil {
		log.Fatal(err)
	}
	_, err = os.Stat(bed.CAFile)
	fmt.Println(alice.JID, bed.Proxy65JID, roster, err == nil)
	// Output: alice@xjingle.test proxy.xjingle.test map[bob@xjingle.test:both] true
}
