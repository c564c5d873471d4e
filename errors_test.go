package augen_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
	"github.com/augen-project/augen/unpack"
	"github.com/augen-project/augen/verify"
)

// Every layer's check failure, wrapped as the layers wrap them, is a
// rejection; each still matches only itself among the sentinels.
func TestRejectionFamily(t *testing.T) {
	family := []error{payload.ErrInvalid, payload.ErrSignature, apply.ErrApply, apply.ErrMismatch, unpack.ErrImage,
		verify.ErrVerification, bundle.ErrFormat, bundle.ErrStatement, bundle.ErrEnvelope}
	for i, sentinel := range family {
		err := fmt.Errorf("member x: %w: details", sentinel)
		if !errors.Is(err, augen.ErrRejected) {
			t.Errorf("%v is not a rejection", sentinel)
		}
		for j, other := range family {
			if i != j && errors.Is(err, other) {
				t.Errorf("%v matches %v", sentinel, other)
			}
		}
		if err.Error() != "member x: "+sentinel.Error()+": details" {
			t.Errorf("message %q", err)
		}
	}
	for _, err := range []error{apply.ErrNeedSource, errors.New("disk full")} {
		if errors.Is(err, augen.ErrRejected) {
			t.Errorf("%v is a rejection", err)
		}
	}
}

func ExampleRejection() {
	errBadThing := augen.Rejection("thing: bad thing")
	err := fmt.Errorf("reading x: %w", errBadThing)
	fmt.Println(errors.Is(err, augen.ErrRejected), errors.Is(err, errBadThing))
	// Output: true true
}
