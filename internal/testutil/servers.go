package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/budget"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitPort waits until something listens on 127.0.0.1:port.
func WaitPort(t testing.TB, port int, logFile string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logFile)
	t.Fatalf("nothing listens on port %d after 10s:\n%s", port, log)
}

// TLSCert writes a self-signed CA certificate for 127.0.0.1 and its key
// into dir (cert.pem, key.pem) and returns their paths. The certificate is
// its own CA, so cert.pem is also the CA file clients trust.
func TLSCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "augen test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// StartNginxDAV runs a real nginx on 127.0.0.1 over TLS that takes HTTP
// PUT (the dav module) under /pkgs/ and serves the files back, with root
// www inside dir. It returns the base URL https://127.0.0.1:PORT/pkgs/ and
// the CA file that trusts it.
func StartNginxDAV(t testing.TB, dir string) (baseURL, caFile string) {
	t.Helper()
	RequireTools(t, "nginx")
	nginx, _ := exec.LookPath("nginx")
	if nginx == "" {
		nginx = "/usr/sbin/nginx"
	}
	cert, key := TLSCert(t, dir)
	port := FreePort(t)
	for _, d := range []string{"www/pkgs", "tmp", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // workers write the uploads into dir
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log;
events { worker_connections 64; }
http {
  access_log %[2]s/logs/access.log;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  client_max_body_size 0;
  server {
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    root %[2]s/www;
    location /pkgs/ {
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
`, user, dir, port, cert, key)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "logs/error.log"))
	logFile := filepath.Join(dir, "logs/error.log")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopGracefully(cmd) })
	WaitPort(t, port, logFile)
	return fmt.Sprintf("https://127.0.0.1:%d/pkgs/", port), cert
}

// stopGracefully asks nginx's master to quit (SIGQUIT: it stops its
// workers, then exits) and kills it only if it has not within 10 s.
// Killing the master outright would leave its workers running.
func stopGracefully(cmd *exec.Cmd) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// StartVersityGW runs versitygw (an S3 gateway) with its POSIX backend on
// 127.0.0.1, storing buckets under dir, and returns its endpoint URL. The
// root credentials are access and secret.
func StartVersityGW(t testing.TB, dir, access, secret string) string {
	t.Helper()
	RequireTools(t, "versitygw")
	port := FreePort(t)
	root := filepath.Join(dir, "gw")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "versitygw.log")
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("versitygw", "--port", fmt.Sprintf("127.0.0.1:%d", port), "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+access, "ROOT_SECRET_ACCESS_KEY="+secret)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	WaitPort(t, port, logFile)
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// FSTree writes a directory tree for the filesystem readers' tests: a
// release file where Flatcar keeps it, a file large enough for indirect
// blocks or several extents, a directory of many entries (hashed
// directories), an empty and a sparse file, relative and absolute
// symlinks and a symlink loop. It returns the directory and what each
// path must read as.
func FSTree(t testing.TB) (string, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"lib/os-release":        []byte("ID=flatcar\nVERSION=1.2.3\n"),
		"share/flatcar/release": []byte("FLATCAR_RELEASE_VERSION=1.2.3\n"),
		"bin/big":               bytes.Repeat([]byte("0123456789abcdef"), 600<<10/16+7),
		"empty":                 nil,
	}
	for i := 0; i < 500; i++ {
		files[fmt.Sprintf("many/file-with-a-long-name-%03d", i)] = []byte(fmt.Sprint(i))
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sparse.WriteAt([]byte("end"), 1<<20)
	sparse.Close()
	files["sparse"] = append(make([]byte, 1<<20), "end"...)
	for link, target := range map[string]string{"bin/rel": "../lib/os-release", "abs": "/lib", "loop": "loop"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	files["bin/rel"] = files["lib/os-release"]
	files["abs/os-release"] = files["lib/os-release"]
	return dir, files
}

// CheckFSReads reads every path of an FSTree through read and checks the
// refusals every filesystem reader owes: a missing file (notExist), a
// symlink loop, a file over the limit. skip says which read errors a
// variant may give instead of the content (refused, never misread).
func CheckFSReads(t testing.TB, read func(p string, limit int64) ([]byte, error), files map[string][]byte, notExist error, skip func(error) bool) {
	t.Helper()
	for p, want := range files {
		got, err := read(p, 16<<20)
		if err != nil {
			if skip != nil && skip(err) {
				continue
			}
			t.Fatalf("%s: %v", p, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, want %d", p, len(got), len(want))
		}
	}
	if _, err := read("lib/missing", 100); !errors.Is(err, notExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := read("loop", 100); err == nil {
		t.Error("symlink loop followed")
	}
	if _, err := read("bin/big", 100); err == nil {
		t.Error("file over the limit read")
	}
}

// CheckBudgetedRead opens b with open through a read budget of max bytes
// (what verification gives a filesystem walk), reads lib/os-release, and
// fails if the content passes its limit or the reader read more than max
// plus one read of at most slack bytes: the fuzz check of every reader
// of untrusted filesystems.
func CheckBudgetedRead(t testing.TB, b []byte, max, slack int64, open func(r io.ReaderAt, size int64) (func(p string, limit int64) ([]byte, error), error)) {
	t.Helper()
	r := budget.NewReaderAt(context.Background(), bytes.NewReader(b), max)
	if read, err := open(r, int64(len(b))); err == nil {
		if got, err := read("lib/os-release", 1<<16); err == nil && len(got) > 1<<16 {
			t.Fatal("limit exceeded")
		}
	}
	if r.Used() > max+slack {
		t.Fatalf("read %d bytes with a budget of %d", r.Used(), max)
	}
}

// CheckReadDir lists an FSTree's directory of 500 entries through
// readDir, and checks that a smaller limit is an error and a file is not
// a directory.
func CheckReadDir(t testing.TB, readDir func(p string, limit int) ([]string, error)) {
	t.Helper()
	names, err := readDir("many", 1000)
	if err != nil || len(names) != 500 || !slices.Contains(names, "file-with-a-long-name-042") || slices.Contains(names, ".") {
		t.Fatalf("ReadDir(many): %d names, %v", len(names), err)
	}
	if _, err := readDir("many", 499); err == nil {
		t.Error("ReadDir past its limit")
	}
	if _, err := readDir("lib/os-release", 10); err == nil {
		t.Error("ReadDir of a file")
	}
}
