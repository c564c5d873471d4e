package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// crafted is an unsigned payload whose one REPLACE_BZ operation claims
// 2^52-1 blocks of a 2-block partition, with data that is no bzip2.
func crafted(t *testing.T) []byte {
	t.Helper()
	data := []byte("BZh9 not really bzip2")
	sum, part := sha256.Sum256(data), sha256.Sum256(nil)
	m := &payload.Manifest{
		BlockSize:        proto.Uint32(payload.BlockSize),
		NewPartitionInfo: &payload.InstallInfo{Size: proto.Uint64(2 * payload.BlockSize), Hash: part[:]},
		PartitionOperations: []*payload.Operation{{
			Type:       payload.OpReplaceBz.Enum(),
			DstExtents: []*payload.Extent{{StartBlock: proto.Uint64(0), NumBlocks: proto.Uint64(1<<52 - 1)}},
			DataOffset: proto.Uint32(0), DataLength: proto.Uint32(uint32(len(data))), DataSha256Hash: sum[:],
		}},
	}
	var out bytes.Buffer
	if _, err := payload.Assemble(&out, m, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%s holds %d file(s) afterwards: %s", dir, len(ents), ents[0].Name())
	}
}

// Finding 1: payload verify applied a payload before checking its
// signature, so a crafted one reached the decoder whatever --pubkey was.
// Now the signature is checked first: exit 3, nothing decoded, nothing
// left in the temporary directory.
func TestCraftedPayloadRefusedBeforeApply(t *testing.T) {
	tmp, vec := fixtures(t)
	spool := t.TempDir()
	t.Setenv("TMPDIR", spool)
	os.WriteFile(tmp+"/crafted.bin", crafted(t), 0o644)
	testutil.SaveCrafted(t, "1-huge-extent.payload", crafted(t))
	for _, in := range []string{tmp + "/crafted.bin", "-"} {
		var stdout, stderr bytes.Buffer
		stdin, _ := os.Open(tmp + "/crafted.bin")
		code := run(context.Background(), []string{"payload", "verify", in, "--pubkey", vec + "/TEST-ONLY-key-a.pub.pem"}, stdin, &stdout, &stderr)
		stdin.Close()
		if code != exitVerify || !strings.Contains(stderr.String(), "not signed") {
			t.Fatalf("%s: exit %d\n%s", in, code, stderr.String())
		}
		emptyDir(t, spool)
	}
}

// Finding 10: -o naming an input, an existing directory or a directory
// that does not exist is a usage error before any work; -o naming a
// device is written in place, never replaced by a regular file.
func TestOutputChecks(t *testing.T) {
	tmp, _ := fixtures(t)
	before, _ := os.ReadFile(tmp + "/usr-new.bin")
	for _, tc := range []struct{ out, want string }{
		{tmp + "/usr-new.bin", "same file as the input"},
		{tmp, "is a directory"},
		{tmp + "/no/such/out.gz", "does not exist"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"payload", "build", "--image", tmp + "/usr-new.bin", "--key", "file:" + tmp + "/key-a.pem", "-o", tc.out}, nil, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("-o %s: exit %d\n%s", tc.out, code, stderr.String())
		}
	}
	// A key file given as file:PATH is an input too.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"key", "pubkey", "file:" + tmp + "/key-a.pem", "-o", tmp + "/key-a.pem"}, nil, &stdout, &stderr); code != exitUsage {
		t.Errorf("key pubkey -o KEY: exit %d\n%s", code, stderr.String())
	}
	if after, _ := os.ReadFile(tmp + "/usr-new.bin"); !bytes.Equal(before, after) {
		t.Fatal("the input changed")
	}
	augen(t, "payload", "build", "--image", tmp+"/usr-new.bin", "--key", "file:"+tmp+"/key-a.pem", "-o", "/dev/null")
	if st, err := os.Stat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is now %v (%v)", st.Mode(), err)
	}
}

// Finding 7: bundle sign added a signature to anything. It now refuses an
// envelope of another type and a member that does not match the
// statement, and writes nothing.
func TestBundleSignChecksWhatItSigns(t *testing.T) {
	tmp, _ := fixtures(t)
	img := root + "image/flatcar_test_image.bin.bz2"
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	augen(t, "release", img, "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/release.tar")
	b, _ := os.ReadFile(tmp + "/release.tar")
	payloadByte := append([]byte(nil), b...)
	payloadByte[bytes.LastIndex(payloadByte, []byte("CrAU"))+5000] ^= 1
	foreign := bytes.Replace(b, []byte("application/vnd.in-toto+json"), []byte("application/vnd.in-toto+jsox"), 1)
	augen(t, "policy", "init", "--bundle-key", "file:"+tmp+"/key-a.pem", "--payload-key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/policy.json")
	testutil.SaveCrafted(t, "policy.json", testutil.Read(t, tmp+"/policy.json"))
	testutil.SaveCrafted(t, "TEST-ONLY-key-b.pem", testutil.Read(t, tmp+"/key-b.pem"))
	testutil.SaveCrafted(t, "2-swapped-member.tar", payloadByte)
	testutil.SaveCrafted(t, "7-foreign-type.tar", foreign)
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{"member": {payloadByte, "refusing to sign"}, "type": {foreign, "payload type"}} {
		os.WriteFile(tmp+"/in.tar", tc.b, 0o644)
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"bundle", "sign", tmp + "/in.tar", "--key", "file:" + tmp + "/key-b.pem", "-o", tmp + "/out.tar"}, nil, &stdout, &stderr)
		if code != exitVerify || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d\n%s", name, code, stderr.String())
		}
		if _, err := os.Stat(tmp + "/out.tar"); err == nil {
			t.Errorf("%s: out.tar written", name)
		}
	}
	// What is signed is shown before it is signed.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bundle", "sign", tmp + "/release.tar", "--key", "file:" + tmp + "/key-b.pem", "-o", tmp + "/out.tar"}, nil, &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "signing release amd64-usr 4459.2.1") || !strings.Contains(stderr.String(), "already signed by") {
		t.Fatalf("sign: exit %d\n%s", code, stderr.String())
	}
}

// Signals: SIGINT, SIGTERM and SIGHUP stop a command that is busy (here,
// spooling a payload from a pipe that never ends), remove its temporary
// files, print one line and exit 128+signal; a closed stdout pipe gives
// 141.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	tmp, vec := fixtures(t)
	bin := filepath.Join(t.TempDir(), "augen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}, {syscall.SIGHUP, 129}} {
		spool := t.TempDir()
		cmd := exec.Command(bin, "payload", "verify", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem", "-")
		cmd.Env = append(os.Environ(), "TMPDIR="+spool)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		w, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, 1<<20))
		// Wait (bounded) for the spool to exist, so there is something
		// to remove.
		for i := 0; i < 200; i++ {
			if ents, _ := os.ReadDir(spool); len(ents) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cmd.Process.Signal(tc.sig)
		err = cmd.Wait()
		w.Close()
		if cmd.ProcessState.ExitCode() != tc.code {
			t.Errorf("%v: exit %d (%v)\n%s", tc.sig, cmd.ProcessState.ExitCode(), err, stderr.String())
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "interrupted by") {
			t.Errorf("%v: stderr %q", tc.sig, stderr.String())
		}
		emptyDir(t, spool)
	}
	// A reader that goes away: exit 141, no partial output left.
	cmd := exec.Command(bin, "payload", "build", "--image", tmp+"/usr-new.bin", "--key", "file:"+tmp+"/key-a.pem", "-o", "-")
	r, w, _ := os.Pipe()
	cmd.Stdout = w
	r.Close()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	w.Close()
	if cmd.ProcessState.ExitCode() != 141 || !strings.Contains(stderr.String(), "SIGPIPE") {
		t.Errorf("broken pipe: exit %d\n%s", cmd.ProcessState.ExitCode(), stderr.String())
	}
}

// A bzip2 --image that decompresses past the largest USR image is refused
// as soon as it does, and nothing is left beside the output.
func TestBzip2ImageBomb(t *testing.T) {
	old := maxUSRImage
	maxUSRImage = 4 << 20
	defer func() { maxUSRImage = old }()
	dir := t.TempDir()
	bomb := filepath.Join(dir, "usr.bin.bz2")
	os.WriteFile(bomb, pbzip2.Compress(make([]byte, 8<<20), pbzip2.Buffer), 0o644) // 8 MiB of zeros in a few dozen bytes
	testutil.SaveCrafted(t, "bzip2-image-bomb.bin.bz2", testutil.Read(t, bomb))
	code, _, errOut := runCapture("payload", "build", "--image", bomb, "-o", filepath.Join(dir, "out.gz"))
	if code == exitOK || !strings.Contains(errOut, "more than any USR image") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
