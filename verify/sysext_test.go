package verify

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/sysext"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

// A bundle whose extra is a sysext of another build fails with a
// FailedError that names the sysext check and carries the sysext
// refusal (errors.Is), its text the report's.
func TestFailedErrorCarriesSysextRefusal(t *testing.T) {
	dir := testutil.Folder(t, t.TempDir(), "4799.0.0", "amd64", "SYSEXT_KEY=other")
	tmp := t.TempDir()
	key := testutil.Key(t, "a")
	build := func(name, image, kernel string, extra bool) string {
		out := filepath.Join(tmp, name)
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		in, closeAll, err := generate.OpenInputs(image, kernel)
		if err != nil {
			t.Fatal(err)
		}
		defer closeAll()
		bo := generate.BuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{key}), TempDir: tmp}
		bo.Image, bo.Extra = in[0].Input, extra
		if kernel != "" {
			bo.Kernel = in[1].Input
		}
		if _, err := generate.BuildFull(context.Background(), f, bo); err != nil {
			t.Fatal(err)
		}
		return out
	}
	usr := filepath.Join(tmp, "usr.bin")
	os.WriteFile(usr, testutil.Unbzip2(t, filepath.Join(dir, "flatcar_production_update.bin.bz2")), 0o644)
	full := build("full.gz", usr, filepath.Join(dir, "flatcar_production_image.vmlinuz"), false)
	docker := build("flatcar-docker.gz", filepath.Join(dir, "flatcar-docker.raw"), "", true)
	var b bytes.Buffer
	_, err := bundle.Build(&b, bundle.BuildOptions{Version: "4799.0.0", Board: "amd64-usr", Augen: "test", MTime: time.Unix(0, 0),
		Payloads: []bundle.PayloadFile{{Path: full, Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
			{Path: docker, Name: "flatcar-docker.gz", Kind: bundle.KindExtra}},
		PayloadKeys: []crypto.PublicKey{key.Public()}, Signers: []crypto.Signer{key}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPolicy([]crypto.PublicKey{key.Public()}, []crypto.PublicKey{key.Public()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := NewTrust(*p)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifyBytes(b.Bytes(), trust, Options{TempDir: tmp})
	var fe *FailedError
	if !errors.As(err, &fe) || !errors.Is(err, ErrVerification) || !errors.Is(err, sysext.ErrSysext) || !fe.Failed("sysext") || fe.Failed("payload") {
		t.Fatalf("got %v", err)
	}
	if len(rep.Failures) != 1 || err.Error() != ErrVerification.Error()+": "+rep.Failures[0].String() {
		t.Fatalf("text %q, report %+v", err, rep.Failures)
	}
}
