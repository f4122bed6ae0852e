package inline_test

import (
	"fmt"

	"github.com/xjingle/xjingle/jingle"
	"github.com/xjingle/xjingle/transports/inline"
)

// The transport-info payload that carries a stream, and the receiver's
// check of it.
func ExampleDataElement() {
	el := inline.DataElement([]byte("hello"))
	fmt.Println(string(el.Bytes()))

	wire, _ := jingle.ParseElement(el.Bytes())
	b, err := inline.ParseData(wire, inline.DefaultMaxSize)
	fmt.Printf("%q %v\n", b, err)
	// Output:
	// <transport xmlns="urn:xjingle:jingle:transports:bob:0"><data xmlns="urn:xmpp:bob" cid="sha1+aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d@bob.xmpp.org" type="application/octet-stream" max-age="0">aGVsbG8=</data></transport>
	// "hello" <nil>
}
