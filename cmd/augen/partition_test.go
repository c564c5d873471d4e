package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

// A delta is built for the USR partition of the machines it is for: the
// test image's 4 MiB /usr in its own 6 MiB USR-A (as Flatcar's 1 GiB image
// sits in a 2 GiB partition). It applies on that partition only, which
// payload verify simulates from the delta's own old size by default and
// from --partition-size when given.
func TestDeltaForAPartitionSize(t *testing.T) {
	tmp, _ := fixtures(t)
	unpackReleases(t, tmp, false)
	build := func(out string, extra ...string) {
		augen(t, append([]string{"payload", "build", "--old", tmp + "/o/usr.bin", "--old-kernel", tmp + "/o/vmlinuz", "--image", tmp + "/n/usr.bin", "--kernel", tmp + "/n/vmlinuz",
			"--key", "file:" + tmp + "/key-a.pem", "-o", out}, extra...)...)
	}
	build(tmp+"/d6.gz", "--partition-size", "6MiB")
	build(tmp + "/d4.gz")
	pub := root + "vectors/TEST-ONLY-key-a.pub.pem"
	verifyOn := func(p string, extra ...string) (int, string, string) {
		return runAugen(append([]string{"payload", "verify", p, "--pubkey", pub, "--old", tmp + "/o/usr.bin", "--old-kernel", tmp + "/o/vmlinuz"}, extra...)...)
	}
	if code, out, errOut := verifyOn(tmp + "/d6.gz"); code != 0 || !strings.Contains(out, "as a USR partition of 6291456 bytes (6 MiB), the image then zeros") {
		t.Fatalf("the 6 MiB delta on its own partition: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := verifyOn(tmp+"/d6.gz", "--partition-size", "4MiB"); code != exitVerify || !strings.Contains(errOut, "it was made for a partition of 6291456 bytes (--partition-size)") {
		t.Fatalf("the 6 MiB delta on a 4 MiB partition: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := verifyOn(tmp+"/d4.gz", "--partition-size", "6MiB"); code != exitVerify || !strings.Contains(errOut, tmp+"/o/usr.bin (4194304 bytes) in a partition of 6291456 bytes") {
		t.Fatalf("the image-sized delta on a 6 MiB partition: exit %d\n%s", code, errOut)
	}
	// The image itself, padded as the partition holds it, is the same machine.
	padded := tmp + "/o/usr-6m.bin"
	b, err := os.ReadFile(tmp + "/o/usr.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(padded, append(b, make([]byte, 2<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runAugen("payload", "verify", tmp+"/d6.gz", "--pubkey", pub, "--old", padded, "--old-kernel", tmp+"/o/vmlinuz"); code != 0 {
		t.Fatalf("the 6 MiB delta on the padded image: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runAugen("payload", "verify", tmp+"/d4.gz", "--pubkey", pub, "--old", padded, "--old-kernel", tmp+"/o/vmlinuz"); code != exitVerify {
		t.Fatalf("the image-sized delta on the padded image: exit %d\n%s", code, errOut)
	}
	// Usage mistakes exit 2 before anything is read.
	for _, args := range [][]string{
		{"payload", "build", "--image", tmp + "/n/usr.bin", "--partition-size", "2GiB", "-o", tmp + "/x.gz"},
		{"payload", "build", "--old", tmp + "/o/usr.bin", "--image", tmp + "/n/usr.bin", "--partition-size", "1MiB", "-o", tmp + "/x.gz"},
		{"payload", "verify", tmp + "/d6.gz", "--pubkey", pub, "--partition-size", "2GiB"},
		{"payload", "verify", tmp + "/d6.gz", "--pubkey", pub, "--old", tmp + "/o/usr.bin", "--partition-size", "two"},
	} {
		if code, _, errOut := runAugen(args...); code != exitUsage {
			t.Errorf("augen %s: exit %d, want %d\n%s", strings.Join(args, " "), code, exitUsage, errOut)
		}
	}
	if _, err := os.Stat(tmp + "/x.gz"); err == nil {
		t.Error("a refused build left its output")
	}
}

// release builds one delta per --partition-size, the statement records
// each one's partition, and verify --old applies each on its own.
func TestReleaseDeltaPerPartitionSize(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "release", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "--version", "4459.2.1",
		"--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem",
		"--delta-from", "4459.1.0="+root+"image/flatcar_test_image-4459.1.0.bin.bz2",
		"--partition-size", "4MiB", "--partition-size", "6MiB", "-o", tmp+"/r.tar")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	out := augen(t, "verify", "--policy", tmp+"/p.json", tmp+"/r.tar", "--usr-size", "4MiB", "--json",
		"--old", "4459.1.0="+root+"image/flatcar_test_image-4459.1.0.bin.bz2")
	var rep struct {
		Payloads []struct {
			Name          string `json:"name"`
			Applied       bool   `json:"applied"`
			PartitionSize int64  `json:"partition_size"`
		} `json:"payloads"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := map[string]int64{"delta-from-4459.1.0-for-4MiB.gz": 4 << 20, "delta-from-4459.1.0-for-6MiB.gz": 6 << 20}
	for _, p := range rep.Payloads {
		if size, ok := want[p.Name]; ok {
			if !p.Applied || p.PartitionSize != size {
				t.Errorf("%s: applied %v on %d bytes, want %d", p.Name, p.Applied, p.PartitionSize, size)
			}
			delete(want, p.Name)
		}
	}
	var inspect struct {
		Statement bundle.Statement `json:"statement"`
	}
	if err := json.Unmarshal([]byte(augen(t, "bundle", "inspect", tmp+"/r.tar", "--json")), &inspect); err != nil {
		t.Fatal(err)
	}
	if len(inspect.Statement.Predicate.Payloads) != 3 {
		t.Fatalf("%d payloads in the statement", len(inspect.Statement.Predicate.Payloads))
	}
	for _, p := range inspect.Statement.Predicate.Payloads {
		if strings.HasPrefix(p.Name, "delta-") && (p.PartitionSize == 0 || p.OldPartition == nil || p.OldPartition.Size != p.PartitionSize) {
			t.Errorf("%s: the statement records partition_size %d, old partition %+v", p.Name, p.PartitionSize, p.OldPartition)
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing deltas %v in\n%s", want, out)
	}
	if code, _, errOut := runAugen("release", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "--version", "4459.2.1",
		"--key", "file:"+tmp+"/key-a.pem", "--partition-size", "6MiB", "-o", tmp+"/r2.tar"); code != exitUsage || !strings.Contains(errOut, "--partition-size goes with --delta-from") {
		t.Fatalf("--partition-size without a delta: exit %d\n%s", code, errOut)
	}
}

// A release whose delta installs another /usr than its full payload (a
// build that checks nothing bundled the old release's own /usr as the
// delta's target) is refused, the delta named.
func TestVerifyDeltaOfAnotherRelease(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	unpackReleases(t, tmp, true)
	// The "delta" rebuilds 4459.1.0 again.
	augen(t, "payload", "build", "--old", tmp+"/o/usr.bin", "--old-kernel", tmp+"/o/vmlinuz", "--image", tmp+"/o/usr.bin", "--kernel", tmp+"/o/vmlinuz",
		"--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/delta.gz")
	uncheckedBundle(t, tmp+"/r.tar", "4459.2.1", "amd64-usr", []bundle.PayloadFile{
		{Path: tmp + "/flatcar_production_update.gz", Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
		{Path: tmp + "/delta.gz", Name: "delta-from-4459.1.0.gz", Kind: bundle.KindDelta, FromVersion: "4459.1.0"}})
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	for _, old := range [][]string{nil, {"--old", "4459.1.0=" + tmp + "/o/usr.bin," + tmp + "/o/vmlinuz"}} {
		args := append([]string{"verify", "--policy", tmp + "/p.json", tmp + "/r.tar", "--allow-unapplied-deltas"}, old...)
		code, _, errOut := runAugen(args...)
		if code != exitVerify || !strings.Contains(errOut, "delta-from-4459.1.0.gz") || !strings.Contains(errOut, "installs another /usr than flatcar_production_update.gz") {
			t.Fatalf("%v: exit %d\n%s", old, code, errOut)
		}
	}
}

// Deltas that no machine installs, signed and bundled by a build that
// checks nothing: old info over a prefix of the old image, old info over
// nothing, and a new partition larger than the old one (its tail never
// written). verify --old refuses each, as the client does.
func TestVerifyRefusesDeltasNoMachineInstalls(t *testing.T) {
	tmp, vec := fixtures(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	unpackReleases(t, tmp, true)
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/p.json")
	file := func(p string) generate.File {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return generate.File{R: bytes.NewReader(b), Size: int64(len(b))}
	}
	oldUSR, _ := os.ReadFile(tmp + "/o/usr.bin")
	prefix := sha256.Sum256(oldUSR[:len(oldUSR)/2])
	nothing := sha256.Sum256(nil)
	for _, c := range []struct {
		name string
		edit func(m *payload.Manifest)
		want string
	}{
		{"old info over a prefix", func(m *payload.Manifest) {
			m.OldPartitionInfo = &payload.InstallInfo{Size: proto.Uint64(uint64(len(oldUSR) / 2)), Hash: prefix[:]}
		}, "(4194304 bytes) does not fit a partition of 2097152 bytes"}, // the statement records the delta's partition as its old size
		{"old info over nothing", func(m *payload.Manifest) {
			m.OldPartitionInfo = &payload.InstallInfo{Size: proto.Uint64(0), Hash: nothing[:]}
		}, "the delta does not apply to the old partition"},
		{"a partition that grows", func(m *payload.Manifest) {
			m.NewPartitionInfo.Size = proto.Uint64(m.NewPartitionInfo.GetSize() + 2*payload.BlockSize)
		}, "larger than the 4194304-byte partition it applies on: stricter than the client (partition-grows)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := generate.DeltaOptions{Old: file(tmp + "/o/usr.bin"), New: file(tmp + "/n/usr.bin"), OldKernel: file(tmp + "/o/vmlinuz"), Kernel: file(tmp + "/n/vmlinuz")}
			m, blobs, err := generate.Delta(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(m)
			if err := payload.Prepare(m, []int{256}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := payload.Assemble(&out, m, bytes.NewReader(blobs), payload.SignWith([]crypto.Signer{testutil.Key(t, "a")})); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(dir+"/delta.gz", out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			uncheckedBundle(t, dir+"/r.tar", "4459.2.1", "amd64-usr", []bundle.PayloadFile{
				{Path: tmp + "/flatcar_production_update.gz", Name: "flatcar_production_update.gz", Kind: bundle.KindFull},
				{Path: dir + "/delta.gz", Name: "delta-from-4459.1.0.gz", Kind: bundle.KindDelta, FromVersion: "4459.1.0"}})
			code, _, errOut := runAugen("verify", "--policy", tmp+"/p.json", dir+"/r.tar", "--usr-size", "4MiB",
				"--old", "4459.1.0="+root+"image/flatcar_test_image-4459.1.0.bin.bz2")
			if code != exitVerify || !strings.Contains(errOut, "delta-from-4459.1.0.gz: payload: ") || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
		})
	}
}

// unpackReleases unpacks the test image (4459.2.1) into tmp/n and its
// predecessor (4459.1.0) into tmp/o, and with full also builds the new
// release's full payload, signed by key a, as tmp/flatcar_production_update.gz.
func unpackReleases(t *testing.T, tmp string, full bool) {
	t.Helper()
	augen(t, "unpack", root+"image/flatcar_test_image.bin.bz2", "--usr-size", "4MiB", "-o", tmp+"/n")
	augen(t, "unpack", root+"image/flatcar_test_image-4459.1.0.bin.bz2", "--usr-size", "4MiB", "-o", tmp+"/o")
	if full {
		augen(t, "payload", "build", "--image", tmp+"/n/usr.bin", "--kernel", tmp+"/n/vmlinuz", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/flatcar_production_update.gz")
	}
}
