package verify_test

import (
	"context"
	"crypto"
	"fmt"
	"os"

	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/pubkey"
	"github.com/augen-project/augen/verify"
)

// Payload authenticates a payload, then applies it to a scratch target
// and reports what it rebuilt.
func ExamplePayload() {
	f, err := os.Open("../testdata/vectors/full-signed.bin")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	key, err := pubkey.Load("../testdata/vectors/TEST-ONLY-key-a.pub.pem")
	if err != nil {
		panic(err)
	}
	res, err := verify.Payload(context.Background(), f, st.Size(), []crypto.PublicKey{key}, verify.PayloadOptions{
		Sources: apply.Sources{TempDir: os.TempDir()},
	})
	if err != nil {
		panic(err)
	}
	for _, r := range res.Rebuilt {
		fmt.Println(r.Name, r.Size)
	}
	// Output:
	// partition 4194304
	// KERNEL 463004
}

// Bundle checks a release bundle against a trust policy; a report lists
// what failed, member by member.
func ExampleBundle() {
	pf, err := os.Open("policy.json")
	if err != nil {
		panic(err)
	}
	trust, err := verify.ParsePolicy(pf)
	if err != nil {
		panic(err)
	}
	b, err := os.Open("release.tar")
	if err != nil {
		panic(err)
	}
	st, _ := b.Stat()
	_, rep, err := verify.Bundle(context.Background(), b, st.Size(), trust, verify.Options{Channel: "stable"})
	if err != nil {
		for _, f := range rep.Failures {
			fmt.Println(f.Member, f.Check, f.Error)
		}
		return
	}
	fmt.Println(rep.Board, rep.Version, "OK")
}
