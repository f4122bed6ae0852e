package filetransfer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xjingle/xjingle/internal/xjtest"
	"github.com/xjingle/xjingle/jingle"
	"mellium.im/xmpp/jid"
)

func ExampleSanitizeName() {
	for _, name := range []string{"../../etc/passwd", `C:\Users\x\report.pdf`, "CON.txt", ".bashrc", ""} {
		fmt.Println(SanitizeName(name))
	}
	// Output:
	// passwd
	// report.pdf
	// _CON.txt
	// bashrc
	// file
}

func ExampleSanitizePath() {
	for _, name := range []string{"photos/2024/a.jpg", "../../etc/passwd", "a/../../x", `..\..\x`, "/abs/.git/config"} {
		fmt.Println(SanitizePath(name))
	}
	// Output:
	// photos/2024/a.jpg
	// etc/passwd
	// a/x
	// x
	// abs/git/config
}

func ExampleDescription_Element() {
	d := Description{File: File{
		Name:      "test.txt",
		Size:      6144,
		HasSize:   true,
		MediaType: "text/plain",
		Date:      time.Date(1969, 7, 21, 2, 56, 15, 0, time.UTC),
		HashUsed:  []string{AlgoSHA256},
	}}
	fmt.Println(string(d.Element().Bytes()))
	// Output:
	// <description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><date>1969-07-21T02:56:15Z</date><media-type>text/plain</media-type><name>test.txt</name><size>6144</size><hash-used xmlns="urn:xmpp:hashes:2" algo="sha-256"></hash-used></file></description>
}

func ExampleParseChecksum() {
	// A checksum as Conversations sends it: no creator, sha-1 and sha-256.
	el, _ := jingle.ParseElement([]byte(`<checksum xmlns="urn:xmpp:jingle:apps:file-transfer:5" name="c0"><file>` +
		`<hash xmlns="urn:xmpp:hashes:2" algo="sha-1">qZk+NkcGgWq6PiVxeFDCbJzQ2J0=</hash>` +
		`<hash xmlns="urn:xmpp:hashes:2" algo="sha-256">ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=</hash>` +
		`</file></checksum>`))
	c, err := ParseChecksum(el)
	if err != nil {
		fmt.Println(err)
		return
	}
	h := NewHasher(AlgoSHA256, AlgoSHA1)
	h.Write([]byte("abc"))
	v, err := Verify(h.Sums(), c.File.Hashes)
	fmt.Println(c.Name, v.Verified, v.Matched, err)
	// Output:
	// c0 true [sha-1 sha-256] <nil>
}

func ExampleApp_Send() {
	// Two parties on an in-memory network, with a test transport.
	network := xjtest.NewNetwork()
	hub := newPipeHub()
	dir, _ := os.MkdirTemp("", "xjingle-example")
	defer os.RemoveAll(dir)
	os.Mkdir(filepath.Join(dir, "inbox"), 0o700)

	aliceSig, bobSig := network.Add("alice@example.test/a"), network.Add("bob@example.test/b")
	defer aliceSig.Close()
	defer bobSig.Close()
	alice := New(nil) // sends only
	bob := New(&Store{Dir: filepath.Join(dir, "inbox")}, WithAcceptPolicy(AcceptAll))
	ma, _ := jingle.NewManager(aliceSig, jingle.WithApplication(alice), jingle.WithTransport(hub))
	mb, _ := jingle.NewManager(bobSig, jingle.WithApplication(bob), jingle.WithTransport(hub))
	defer ma.Close()
	defer mb.Close()

	path := filepath.Join(dir, "hello.txt")
	os.WriteFile(path, []byte("hello, bob\n"), 0o600)
	res, err := alice.Send(context.Background(), ma, bobSig.LocalJID(), path, SendOptions{Transport: nsPipe})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Name, res.Bytes, res.Verified)
	got, _ := os.ReadFile(filepath.Join(dir, "inbox", "hello.txt"))
	fmt.Print(string(got))
	// Output:
	// hello.txt 11 true
	// hello, bob
}

// A failed transfer is kept for resume under a name derived from the peer's
// bare JID and the offered name, size and date: any resource of the same
// account resumes it.
func ExampleResumeKey() {
	date := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	k1 := ResumeKey(jid.MustParse("alice@example.com/phone"), "photo.jpg", 1234, date)
	k2 := ResumeKey(jid.MustParse("alice@example.com/laptop"), "photo.jpg", 1234, date)
	fmt.Println(len(k1), k1 == k2)
	// Output: 64 true
}
