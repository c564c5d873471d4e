package verify

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

type fixture struct {
	dir             string
	full, delta     string
	old, oldKernel  string
	bundleA         []byte // signed by bundle key B
	trust           *Trust
	keyA, keyB      crypto.Signer
	usrNew, kernelN []byte
}

// makeFixture builds a full payload and a delta (signed by payload key A)
// from the test vectors and a bundle of both signed by bundle key B.
// payloads are the fixture's full and delta payloads, built once.
var payloads struct {
	once        sync.Once
	full, delta []byte
	err         error
}

func makeFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), keyA: testutil.Key(t, "a"), keyB: testutil.Key(t, "b")}
	oldImg, newImg := testutil.Unbzip2(t, testutil.Vector("usr-old.bin.bz2")), testutil.Unbzip2(t, testutil.Vector("usr-new.bin.bz2"))
	oldK, newK := testutil.Read(t, testutil.Vector("vmlinuz-old")), testutil.Read(t, testutil.Vector("vmlinuz-new"))
	f.usrNew, f.kernelN = newImg, newK
	f.old, f.oldKernel = filepath.Join(f.dir, "usr-old.bin"), filepath.Join(f.dir, "vmlinuz-old")
	os.WriteFile(f.old, oldImg, 0o644)
	os.WriteFile(f.oldKernel, oldK, 0o644)
	// The payloads are built once for all tests (they are deterministic,
	// and only read).
	payloads.once.Do(func() {
		sign := payload.SignWith([]crypto.Signer{f.keyA})
		var full, delta bytes.Buffer
		fo := generate.BuildOptions{SignatureSizes: []int{256}, Sign: sign}
		fo.Image = generate.Input{R: bytes.NewReader(newImg), Size: int64(len(newImg))}
		fo.Kernel = generate.Input{R: bytes.NewReader(newK), Size: int64(len(newK))}
		if _, payloads.err = generate.BuildFull(context.Background(), &full, fo); payloads.err != nil {
			return
		}
		do := generate.DeltaBuildOptions{SignatureSizes: []int{256}, Sign: sign}
		do.Old = generate.File{R: bytes.NewReader(oldImg), Size: int64(len(oldImg))}
		do.New = generate.File{R: bytes.NewReader(newImg), Size: int64(len(newImg))}
		do.OldKernel = generate.File{R: bytes.NewReader(oldK), Size: int64(len(oldK))}
		do.Kernel = generate.File{R: bytes.NewReader(newK), Size: int64(len(newK))}
		_, payloads.err = generate.BuildDelta(context.Background(), &delta, do)
		payloads.full, payloads.delta = full.Bytes(), delta.Bytes()
	})
	if payloads.err != nil {
		t.Fatal(payloads.err)
	}
	f.full, f.delta = filepath.Join(f.dir, "full.gz"), filepath.Join(f.dir, "delta.gz")
	os.WriteFile(f.full, payloads.full, 0o644)
	os.WriteFile(f.delta, payloads.delta, 0o644)
	f.bundleA = f.build(t, []crypto.Signer{f.keyB}, f.full)
	p, err := NewPolicy([]crypto.PublicKey{f.keyB.Public()}, []crypto.PublicKey{f.keyA.Public()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if f.trust, err = NewTrust(*p); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) build(t *testing.T, signers []crypto.Signer, full string) []byte {
	t.Helper()
	var b bytes.Buffer
	_, err := bundle.Build(&b, bundle.BuildOptions{
		Version: "4459.2.1", Board: "amd64-usr", Augen: "test", MTime: time.Unix(1258628400, 0),
		PayloadKeys: []crypto.PublicKey{f.keyA.Public(), f.keyB.Public()}, Signers: signers,
		Payloads: []bundle.PayloadFile{
			{Path: full, Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
			{Path: f.delta, Name: "delta-from-4459.1.0.gz", Kind: bundle.KindDelta, FromVersion: "4459.1.0"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (f *fixture) opts(t *testing.T) Options {
	return Options{Old: map[string]Old{"4459.1.0": {Partition: f.old, Kernel: f.oldKernel}}, TempDir: t.TempDir(), Channel: "dev-channel"}
}

func TestBundleValidAndDeterministic(t *testing.T) {
	f := makeFixture(t)
	rep, err := verifyBytes(f.bundleA, f.trust, f.opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Valid || len(rep.Payloads) != 2 || !rep.Payloads[0].Applied || !rep.Payloads[1].Applied || rep.Version != "4459.2.1" {
		t.Fatalf("%+v", rep)
	}
	if again := f.build(t, []crypto.Signer{f.keyB}, f.full); !bytes.Equal(again, f.bundleA) {
		t.Fatal("the same inputs and keys gave a different bundle")
	}
}

// memberSpans finds where each member's content lies in the tar.
func memberSpans(t *testing.T, tarb []byte) map[string][2]int {
	spans := map[string][2]int{}
	off := 0
	for off+512 <= len(tarb) {
		h := tarb[off : off+512]
		name := strings.TrimRight(string(h[:100]), "\x00")
		if name == "" {
			break
		}
		var size int
		fmt.Sscanf(strings.TrimRight(strings.TrimSpace(string(h[124:136])), "\x00"), "%o", &size)
		spans[name] = [2]int{off + 512, off + 512 + size}
		off += 512 + (size+511)/512*512
	}
	return spans
}

// Tamper matrix: a changed byte in the tar header, the envelope (its
// statement and its signature), a payload's manifest, blob and signature
// fails verify with a message naming the member.
func TestBundleTamperMatrix(t *testing.T) {
	f := makeFixture(t)
	spans := memberSpans(t, f.bundleA)
	full := spans["flatcar_production_update.gz"]
	pr, _ := payload.NewReader(bytes.NewReader(f.bundleA[full[0]:full[1]]), nil)
	meta := int(pr.MetadataSize())
	env := spans[bundle.EnvelopeName]
	envText := string(f.bundleA[env[0]:env[1]])
	sigAt := env[0] + strings.Index(envText, `"sig":"`) + 10
	for _, tc := range []struct {
		name   string
		at     int
		member string
	}{
		{"tar header", full[0] - 512 + 130, "bundle"},
		{"statement", env[0] + strings.Index(envText, `"payload":"`) + 40, bundle.EnvelopeName},
		{"envelope signature", sigAt, bundle.EnvelopeName},
		{"payload header", full[0] + 2, "flatcar_production_update.gz"},
		{"payload manifest", full[0] + meta - 5, "flatcar_production_update.gz"},
		{"payload blob", full[0] + meta + 1000, "flatcar_production_update.gz"},
		{"payload signature", full[1] - 10, "flatcar_production_update.gz"},
		{"delta blob", spans["delta-from-4459.1.0.gz"][0] + 3000, "delta-from-4459.1.0.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(f.bundleA)
			b[tc.at] ^= 0x04
			_, err := verifyBytes(b, f.trust, f.opts(t))
			if err == nil || !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), tc.member+":") {
				t.Fatalf("got %v, want a failure naming %s", err, tc.member)
			}
		})
	}
}

func TestBundleTrustFailures(t *testing.T) {
	f := makeFixture(t)
	// Signed by an untrusted key only.
	untrusted := f.build(t, []crypto.Signer{f.keyA}, f.full)
	if _, err := verifyBytes(untrusted, f.trust, f.opts(t)); err == nil || !strings.Contains(err.Error(), "channel dev-channel needs 1 signatures by its keys") ||
		!strings.Contains(err.Error(), "the bundle has 0 (none); also signed by 1 key(s) the policy does not trust") {
		t.Fatalf("untrusted: %v", err)
	}
	noChannel := f.opts(t)
	noChannel.Channel = ""
	if _, err := verifyBytes(untrusted, f.trust, noChannel); err == nil || !strings.Contains(err.Error(), "signed by 0 of the policy's bundle keys (none), the policy needs 1 of") {
		t.Fatalf("untrusted, no channel: %v", err)
	}
	// One signature short of a threshold of 2: refused without a channel
	// and for stable; dev-channel's rule (any one key) is honoured.
	p, _ := NewPolicy([]crypto.PublicKey{f.keyA.Public(), f.keyB.Public()}, []crypto.PublicKey{f.keyA.Public()}, 2)
	two, _ := NewTrust(*p)
	if _, err := verifyBytes(f.bundleA, two, noChannel); err == nil || !strings.Contains(err.Error(), "the policy needs 2 of") {
		t.Fatalf("threshold: %v", err)
	}
	stable := f.opts(t)
	stable.Channel = "stable"
	if _, err := verifyBytes(f.bundleA, two, stable); err == nil || !strings.Contains(err.Error(), "channel stable needs 2 signatures by its keys") {
		t.Fatalf("threshold, stable: %v", err)
	}
	if _, err := verifyBytes(f.bundleA, two, f.opts(t)); err != nil {
		t.Fatalf("threshold 2, dev-channel (any one): %v", err)
	}
	// The trusted payload key signed, but not in the version-2 slot.
	var pay bytes.Buffer
	fo := generate.BuildOptions{SignatureSizes: []int{256, 256}, Sign: payload.SignWith([]crypto.Signer{f.keyA, f.keyB})}
	fo.Image = generate.Input{R: bytes.NewReader(f.usrNew), Size: int64(len(f.usrNew))}
	fo.Kernel = generate.Input{R: bytes.NewReader(f.kernelN), Size: int64(len(f.kernelN))}
	if _, err := generate.BuildFull(context.Background(), &pay, fo); err != nil {
		t.Fatal(err)
	}
	wrongSlot := filepath.Join(f.dir, "wrong-slot.gz")
	os.WriteFile(wrongSlot, pay.Bytes(), 0o644)
	b := f.build(t, []crypto.Signer{f.keyB}, wrongSlot)
	if _, err := verifyBytes(b, f.trust, f.opts(t)); err == nil || !strings.Contains(err.Error(), "version-2 signature") {
		t.Fatalf("wrong slot: %v", err)
	}
	// A channel the keys may not point at.
	o := f.opts(t)
	o.Channel = "nightly"
	if _, err := verifyBytes(f.bundleA, f.trust, o); err == nil || !strings.Contains(err.Error(), "allows no channel") {
		t.Fatalf("channel: %v", err)
	}
}

func FuzzBundle(f *testing.F) {
	f.Add([]byte("not a bundle"))
	p, _ := NewPolicy([]crypto.PublicKey{testutil.Key(f, "b").Public()}, []crypto.PublicKey{testutil.Key(f, "a").Public()}, 1)
	trust, _ := NewTrust(*p)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := verifyBytes(b, trust, Options{TempDir: t.TempDir()})
		if err == nil || rep.Valid {
			t.Fatal("an unsigned random bundle verified")
		}
	})
}

// A second officer's signature is added without rebuilding anything, and
// the bundle then meets a threshold of two.
func TestAddSignature(t *testing.T) {
	f := makeFixture(t)
	var out bytes.Buffer
	err := bundle.AddSignature(bytes.NewReader(f.bundleA), &out, func(e *bundle.Envelope, _ *bundle.Statement) error { return e.Sign(f.keyA) }, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewPolicy([]crypto.PublicKey{f.keyA.Public(), f.keyB.Public()}, []crypto.PublicKey{f.keyA.Public()}, 2)
	two, _ := NewTrust(*p)
	if _, err := verifyBytes(out.Bytes(), two, f.opts(t)); err != nil {
		t.Fatal(err)
	}
	// Signing in the other order gives the same bytes.
	var ba, both bytes.Buffer
	first := f.build(t, []crypto.Signer{f.keyA}, f.full)
	ba.Write(first)
	if err := bundle.AddSignature(&ba, &both, func(e *bundle.Envelope, _ *bundle.Statement) error { return e.Sign(f.keyB) }, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(both.Bytes(), out.Bytes()) {
		t.Fatal("the order of signing changed the bundle")
	}
}

// The statement's version must be the one the payload installs: a /usr
// declaring another version in /usr/lib/os-release fails, naming both.
func TestBundleVersionMismatch(t *testing.T) {
	testutil.RequireTools(t, "mke2fs")
	f := makeFixture(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "lib"), 0o755)
	os.WriteFile(filepath.Join(src, "lib/os-release"), []byte("ID=flatcar\nVERSION=4459.2.0\n"), 0o644)
	img := filepath.Join(t.TempDir(), "usr.img")
	if out, err := exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-d", src, img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	usr := testutil.Read(t, img)
	var pay bytes.Buffer
	fo := generate.BuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{f.keyA})}
	fo.Image = generate.Input{R: bytes.NewReader(usr), Size: int64(len(usr))}
	fo.Kernel = generate.Input{R: bytes.NewReader(f.kernelN), Size: int64(len(f.kernelN))}
	if _, err := generate.BuildFull(context.Background(), &pay, fo); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(f.dir, "full-4459.2.0.gz")
	os.WriteFile(full, pay.Bytes(), 0o644)
	for _, version := range []string{"4459.2.0", "4459.2.1"} {
		var b bytes.Buffer
		if _, err := bundle.Build(&b, bundle.BuildOptions{Version: version, Board: "amd64-usr", Augen: "test", MTime: time.Unix(1258628400, 0),
			PayloadKeys: []crypto.PublicKey{f.keyA.Public()}, Signers: []crypto.Signer{f.keyB},
			Payloads: []bundle.PayloadFile{{Path: full, Name: "flatcar_production_update.gz", Kind: bundle.KindFull}}}); err != nil {
			t.Fatal(err)
		}
		rep, err := verifyBytes(b.Bytes(), f.trust, f.opts(t))
		switch version {
		case "4459.2.0":
			if err != nil || rep.Payloads[0].OSVersion != "4459.2.0" {
				t.Fatalf("matching version: %v %+v", err, rep.Payloads)
			}
		default:
			want := "flatcar_production_update.gz: release version: the statement says 4459.2.1, but the new partition's /usr/lib/os-release says 4459.2.0"
			if err == nil || len(rep.Failures) != 1 || rep.Failures[0].String() != want ||
				rep.Failures[0].Member != "flatcar_production_update.gz" || rep.Failures[0].Check != "release version" {
				t.Fatalf("other version: %v %q", err, rep.Failures)
			}
		}
	}
	// The vectors' partitions hold no filesystem: noted, not failed.
	rep, err := verifyBytes(f.bundleA, f.trust, f.opts(t))
	if err != nil || rep.Payloads[0].VersionNote == "" {
		t.Fatalf("vectors: %v %+v", err, rep.Payloads)
	}
}

// verifyBytes runs Bundle over an in-memory bundle.
func verifyBytes(b []byte, trust *Trust, opts Options) (*Report, error) {
	_, rep, err := Bundle(context.Background(), bytes.NewReader(b), int64(len(b)), trust, opts)
	return rep, err
}
