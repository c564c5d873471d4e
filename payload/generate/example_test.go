package generate_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/augen-project/augen/payload/generate"
)

// BuildFull writes an unsigned full payload of a USR image; the same image
// always gives the same bytes.
func ExampleBuildFull() {
	img := bytes.Repeat([]byte("flatcar "), 1<<17) // a 1 MiB "image"
	var out bytes.Buffer
	res, err := generate.BuildFull(context.Background(), &out, generate.BuildOptions{
		FullOptions: generate.FullOptions{Image: generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(out.Len() < len(img)/100, len(res.Digest))
	// Output: true 32
}

// BuildDelta plans a delta from an old image to a new one (file by file
// when both hold an ext2/3/4 or btrfs filesystem) and writes it.
func ExampleBuildDelta() {
	old := bytes.Repeat([]byte("release 1 "), 4096*10/10)
	new := bytes.Repeat([]byte("release 2 "), 4096*10/10)
	opts := generate.DeltaBuildOptions{}
	opts.Old = generate.File{R: bytes.NewReader(old), Size: int64(len(old))}
	opts.New = generate.File{R: bytes.NewReader(new), Size: int64(len(new))}
	opts.Log = func(string) {} // "note: planning block by block": no filesystem here
	var out bytes.Buffer
	if _, err := generate.BuildDelta(context.Background(), &out, opts); err != nil {
		panic(err)
	}
	fmt.Println(out.Len() < len(new))
	// Output: true
}
