package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SoftHSMModule is Debian's SoftHSM2 PKCS#11 module.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SetupSoftHSM gives this test process its own SoftHSM2 configuration and
// token directory (SoftHSM reads SOFTHSM2_CONF at C_Initialize, so call it
// from TestMain before anything opens a pkcs11: key). It returns the
// directory and a cleanup function; with SoftHSM missing it returns "".
func SetupSoftHSM() (string, func(), error) {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return "", func() {}, nil
	}
	dir, err := os.MkdirTemp("", "augen-softhsm-")
	if err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", dir)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", nil, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	return dir, func() { os.RemoveAll(dir) }, nil
}

// RequireSoftHSM skips (or, in CI, fails) when SetupSoftHSM found no SoftHSM.
func RequireSoftHSM(t testing.TB, dir string) {
	t.Helper()
	if dir == "" {
		RequireTools(t, "softhsm2-util")
		t.Fatalf("SoftHSM2 module %s not found", SoftHSMModule)
	}
	RequireTools(t, "softhsm2-util")
}

// SoftHSMToken initializes a token with the given label and user PIN (SO
// PIN "so-"+pin) and, for each key file given, imports it (PKCS#8 PEM) as
// object label "key-N" with id N (1-based).
func SoftHSMToken(t testing.TB, label, pin string, keyFiles ...string) {
	t.Helper()
	run(t, "softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "so-"+pin, "--pin", pin)
	for i, f := range keyFiles {
		run(t, "softhsm2-util", "--import", f, "--token", label, "--label", fmt.Sprintf("key-%d", i+1), "--id", fmt.Sprintf("%02x", i+1), "--pin", pin)
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Swtpm starts a fresh swtpm on a unix socket for this test and returns the
// device attribute for a tpm: URI ("unix:PATH"). It is killed by PID when
// the test ends.
func Swtpm(t testing.TB) string {
	t.Helper()
	RequireTools(t, "swtpm")
	// sun_path is 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--flags", "not-need-init,startup-clear")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		os.RemoveAll(dir)
	})
	// The socket file appears before swtpm accepts on it: wait for a
	// connection to succeed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "unix:" + sock
		}
	}
	t.Fatalf("swtpm did not start: %s", stderr.String())
	return ""
}
