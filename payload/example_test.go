package payload_test

import (
	"crypto"
	"fmt"
	"os"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/pubkey"
)

// Check reads a whole payload under the client's rules and says what it
// holds; CheckClientSignature then asks what update_engine asks.
func ExampleCheck() {
	f, err := os.Open("../testdata/vectors/full-signed.bin")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	key, err := pubkey.Load("../testdata/vectors/TEST-ONLY-key-a.pub.pem")
	if err != nil {
		panic(err)
	}
	s, err := payload.Check(f, []crypto.PublicKey{key})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.Kind, s.Omaha.Size, s.CheckClientSignature() == nil)
	// Output: full 2062173 true
}
