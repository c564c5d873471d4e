package crafted

import "github.com/augen-project/augen/internal/bsdiff"

// realDiff is the generator's own patch from a to b.
func realDiff(a, b []byte) []byte {
	p, err := bsdiff.Diff(a, b)
	if err != nil {
		panic(err)
	}
	return p
}
