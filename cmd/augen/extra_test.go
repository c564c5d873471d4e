package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
)

// signedPayload assembles m with the blobs (one per operation, nil for
// none), signed with the test key a.
func signedPayload(t *testing.T, m *payload.Manifest, blobs [][]byte) []byte {
	t.Helper()
	var data bytes.Buffer
	for i, op := range m.PartitionOperations {
		if blobs[i] == nil {
			continue
		}
		sum := sha256.Sum256(blobs[i])
		op.DataOffset, op.DataLength, op.DataSha256Hash = proto.Uint32(uint32(data.Len())), proto.Uint32(uint32(len(blobs[i]))), sum[:]
		data.Write(blobs[i])
	}
	if err := payload.Prepare(m, []int{256}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := payload.Assemble(&out, m, &data, payload.SignWith([]crypto.Signer{testutil.Key(t, "a")})); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// An extra payload in a bundle is verified by the rules of ue-rs, which
// installs extras: an honest one (payload build --extra) passes, one with
// an operation of two extents (fine for update_engine, which never
// installs it) is refused, with the reason.
func TestVerifyExtraByUeRsRules(t *testing.T) {
	tmp, vec := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	raw := bytes.Repeat([]byte("oem sysext "), 3000) // 33,000 bytes: not whole blocks
	if err := os.WriteFile(tmp+"/oem.raw", raw, 0o644); err != nil {
		t.Fatal(err)
	}
	augen(t, "payload", "build", "--extra", "--image", tmp+"/oem.raw", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/oem-good.gz")
	augen(t, "payload", "verify", "--extra", tmp+"/oem-good.gz", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem", "--image", tmp+"/oem.raw")

	padded := append(append([]byte{}, raw...), make([]byte, 9*4096-len(raw))...)
	sum := sha256.Sum256(padded)
	m := &payload.Manifest{
		BlockSize:           proto.Uint32(payload.BlockSize),
		PartitionOperations: []*payload.Operation{{Type: payload.OpReplace.Enum(), DstExtents: []*payload.Extent{{StartBlock: proto.Uint64(0), NumBlocks: proto.Uint64(4)}, {StartBlock: proto.Uint64(4), NumBlocks: proto.Uint64(5)}}}},
		NewPartitionInfo:    &payload.InstallInfo{Size: proto.Uint64(uint64(len(padded))), Hash: sum[:]},
	}
	if err := os.WriteFile(tmp+"/oem-bad.gz", signedPayload(t, m, [][]byte{padded}), 0o644); err != nil {
		t.Fatal(err)
	}
	// By update_engine's rules the payload is fine.
	augen(t, "payload", "verify", tmp+"/oem-bad.gz", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem")

	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", tmp+"/policy.json")
	for _, tc := range []struct {
		extra string
		ok    bool
	}{{"oem-good.gz", true}, {"oem-bad.gz", false}} {
		out := tmp + "/release-" + tc.extra + ".tar"
		augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem",
			"--bundle-key", "file:"+tmp+"/key-b.pem", "--extra", tmp+"/"+tc.extra, "-o", out)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"verify", "--policy", tmp + "/policy.json", out}, nil, &stdout, &stderr)
		if tc.ok != (code == 0) {
			t.Fatalf("%s: exit %d\n%s%s", tc.extra, code, stdout.String(), stderr.String())
		}
		if !tc.ok && (code != exitVerify || !strings.Contains(stdout.String()+stderr.String(), "ue-rs takes exactly one per operation")) {
			t.Fatalf("%s: exit %d, no reason:\n%s%s", tc.extra, code, stdout.String(), stderr.String())
		}
	}
}
