package release_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/release"
	"github.com/augen-project/augen/unpack"
)

// sized is a test key with the signature size of a 2048-bit RSA key.
type sized struct{ crypto.Signer }

func (sized) SignatureSize() int { return 256 }

func options(t *testing.T, version string) release.Options {
	img := testutil.Root() + "/image/flatcar_test_image.bin.bz2"
	oldImg := testutil.Root() + "/image/flatcar_test_image-4459.1.0.bin.bz2"
	return release.Options{
		Image: img, Version: version, Board: "amd64-usr",
		Deltas:         []release.Delta{{Version: "4459.1.0", Image: oldImg}},
		Unpack:         unpack.Options{USRSize: 4 << 20},
		PayloadSigners: []release.Signer{sized{testutil.Key(t, "a")}},
		BundleSigners:  []crypto.Signer{testutil.Key(t, "b")},
		Augen:          "test", MTime: time.Unix(1258628400, 0), TempDir: t.TempDir(),
	}
}

// The sample image released with a delta: the payloads expected, the
// statement's input digest that of the image file (computed while
// unpacking), and the same bundle byte for byte a second time.
func TestBuild(t *testing.T) {
	var a, b bytes.Buffer
	res, err := release.Build(context.Background(), &a, options(t, "4459.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Payloads) != 2 || res.Payloads[0].Name != "flatcar_production_update.gz" || res.Payloads[1].Name != "delta-from-4459.1.0.gz" {
		t.Fatalf("payloads %+v", res.Payloads)
	}
	sum := sha256.Sum256(testutil.Read(t, options(t, "").Image))
	if in := res.Statement.Predicate.InputImage; in == nil || in.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("input image %+v, want sha256 %x", in, sum)
	}
	if _, err := release.Build(context.Background(), &b, options(t, "4459.2.1")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same release twice differs")
	}
}

// An image released under another version than its /usr declares is
// refused before anything is built.
func TestBuildWrongVersion(t *testing.T) {
	var out bytes.Buffer
	_, err := release.Build(context.Background(), &out, options(t, "4459.3.0"))
	var ve *release.VersionError
	if !errors.Is(err, release.ErrVersion) || !errors.As(err, &ve) || ve.Got != "4459.2.1" || out.Len() != 0 {
		t.Fatalf("got %v (%d bytes written)", err, out.Len())
	}
}

func ExampleBuild() {
	var payloadKey release.Signer // e.g. from signer.Open("pkcs11:…")
	var bundleKey crypto.Signer
	out, err := os.Create("release.tar")
	if err != nil {
		panic(err)
	}
	defer out.Close()
	res, err := release.Build(context.Background(), out, release.Options{
		Image:          "flatcar_production_image.bin.bz2",
		Version:        "4459.2.1",
		Board:          "amd64-usr",
		Deltas:         []release.Delta{{Version: "4426.0.0", Image: "flatcar_production_image-4426.0.0.bin.bz2"}},
		PayloadSigners: []release.Signer{payloadKey},
		BundleSigners:  []crypto.Signer{bundleKey},
		MTime:          time.Now(),
	})
	if err != nil {
		panic(err)
	}
	for _, p := range res.Payloads {
		println(p.Name, p.Kind, p.Size)
	}
}

// A delta's source must be the release its label names, and an older one:
// each mistake is refused before anything is built or written.
func TestBuildDeltaSource(t *testing.T) {
	img := testutil.Root() + "/image/flatcar_test_image.bin.bz2"
	oldImg := testutil.Root() + "/image/flatcar_test_image-4459.1.0.bin.bz2"
	for _, tc := range []struct {
		name string
		d    release.Delta
		want string
	}{
		{"label the image contradicts", release.Delta{Version: "4400.0.0", Image: oldImg}, "that image's /usr/lib/os-release says VERSION=4459.1.0"},
		{"the new image as its own source", release.Delta{Version: "4459.1.0", Image: img}, "says VERSION=4459.2.1"},
		{"from the release itself", release.Delta{Version: "4459.2.1", Image: img}, "the source must be an older release"},
		{"from a newer release", release.Delta{Version: "4460.0.0", Image: oldImg}, "the source must be an older release"},
	} {
		opts := options(t, "4459.2.1")
		opts.Deltas = []release.Delta{tc.d}
		var out bytes.Buffer
		_, err := release.Build(context.Background(), &out, opts)
		if !errors.Is(err, release.ErrDeltaSource) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%s: %d bytes written", tc.name, out.Len())
		}
	}
}
