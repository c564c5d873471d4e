package unpack_test

import (
	"context"
	"fmt"
	"os"

	"github.com/augen-project/augen/unpack"
)

// File unpacks CI's production image into the USR image a payload is
// built from, checking CI's DIGESTS file and the image's signature.
func ExampleFile() {
	usr, err := os.Create("usr.bin")
	if err != nil {
		panic(err)
	}
	defer usr.Close()
	res, kernel, err := unpack.File(context.Background(), "flatcar_production_image.bin.bz2", usr, unpack.Options{},
		unpack.Checks{Digests: "flatcar_production_image.bin.bz2.DIGESTS",
			Signature: "flatcar_production_image.bin.bz2.sig", SigningKey: "buildbot.asc"})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.USR.SHA256, len(kernel), res.Verity.RootHash)
}
