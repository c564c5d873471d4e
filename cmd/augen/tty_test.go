package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair (Linux): the test's stand-in for a
// user's terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Skipf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pty: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// A binary output is not written to a terminal: -o - there is refused
// before any work, while text (a public key) still may go to one.
func TestBinaryOutputNotToTerminal(t *testing.T) {
	tmp, vec := fixtures(t)
	master, tty := openPTY(t)
	var seen bytes.Buffer
	done := make(chan struct{})
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			seen.Write(b[:n])
			if err != nil {
				close(done)
				return
			}
		}
	}()
	_ = done
	var errOut bytes.Buffer
	code := run(context.Background(), []string{"payload", "build", "--image", tmp + "/usr-new.bin", "--key", "file:" + tmp + "/key-a.pem", "-o", "-"}, strings.NewReader(""), tty, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "standard output is a terminal") {
		t.Fatalf("-o - on a terminal: exit %d\n%s\nterminal: %d bytes", code, errOut.String(), seen.Len())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"key", "pubkey", "file:" + tmp + "/key-a.pem"}, strings.NewReader(""), tty, &errOut); code != 0 {
		t.Fatalf("a public key to a terminal: exit %d\n%s", code, errOut.String())
	}
	// /dev/null is a character device, not a terminal.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	errOut.Reset()
	if code := run(context.Background(), []string{"payload", "build", "--image", tmp + "/usr-new.bin", "--key", "file:" + tmp + "/key-a.pem", "-o", "-"}, strings.NewReader(""), null, &errOut); code != 0 {
		t.Fatalf("-o - > /dev/null: exit %d\n%s", code, errOut.String())
	}
	_ = vec
}
