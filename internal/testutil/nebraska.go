package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Nebraska is a real Nebraska server started for one test.
type Nebraska struct {
	// URL is the server's base URL (http://127.0.0.1:PORT).
	URL string
	// PackagesDir is the folder it serves at /flatcar/
	// (-host-flatcar-packages): a store for file:// pushes.
	PackagesDir string
	// Log is the server's log file.
	Log string
}

// NebraskaBin is the Nebraska binary the tests run against: the path in
// $AUGEN_NEBRASKA (scripts/test-nebraska.sh sets it, from
// ../shared/tools/nebraska in CI). Without it the test is skipped: the
// README's test command needs no server.
func NebraskaBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("AUGEN_NEBRASKA")
	if bin == "" {
		t.Skip("AUGEN_NEBRASKA is not set (scripts/test-nebraska.sh runs these tests against a real Nebraska)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("AUGEN_NEBRASKA: %v", err)
	}
	return bin
}

// pgBin is PostgreSQL 15's bin directory ($AUGEN_PG_BIN, or Debian's).
func pgBin(t testing.TB) string {
	dir := os.Getenv("AUGEN_PG_BIN")
	if dir == "" {
		dir = "/usr/lib/postgresql/15/bin"
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err != nil {
		t.Fatalf("PostgreSQL 15 is not installed (%v): scripts/install-deps.sh installs it", err)
	}
	return dir
}

// StartNebraska starts PostgreSQL 15 and the Nebraska at bin on free
// loopback ports, with a fresh cluster (its migrations make the Flatcar
// app with its alpha, beta, stable and edge channels), no authentication
// (-auth-mode noop), and packages served from PackagesDir. Both are
// stopped by their PIDs, and everything removed, when the test ends.
// PostgreSQL refuses to run as root, so as root it runs as the postgres
// user.
func StartNebraska(t testing.TB, bin string) *Nebraska {
	t.Helper()
	pg := pgBin(t)
	dir, err := os.MkdirTemp("", "augen-nebraska-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	asPG := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(pg, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		return cmd
	}
	data := filepath.Join(dir, "pg")
	if out, err := asPG("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	pgPort := FreePort(t)
	pgLog := filepath.Join(dir, "postgres.log")
	lf, err := os.Create(pgLog)
	if err != nil {
		t.Fatal(err)
	}
	postgres := asPG("postgres", "-D", data, "-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(pgPort),
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	postgres.Stdout, postgres.Stderr = lf, lf
	if err := postgres.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown.
		stopPID(postgres, syscall.SIGINT)
		lf.Close()
	})
	WaitPort(t, pgPort, pgLog)

	n := &Nebraska{PackagesDir: filepath.Join(dir, "packages"), Log: filepath.Join(dir, "nebraska.log")}
	static := filepath.Join(dir, "static")
	for _, d := range []string{n.PackagesDir, static} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	n.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	nf, err := os.Create(n.Log)
	if err != nil {
		t.Fatal(err)
	}
	neb := exec.Command(bin, "-port", strconv.Itoa(port), "-auth-mode", "noop", "-nebraska-url", n.URL,
		"-host-flatcar-packages", "-flatcar-packages-path", n.PackagesDir, "-http-static-dir", static)
	neb.Env = append(os.Environ(), fmt.Sprintf("NEBRASKA_DB_URL=postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pgPort))
	neb.Stdout, neb.Stderr = nf, nf
	if err := neb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopPID(neb, syscall.SIGTERM)
		nf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(n.Log)
			if len(b) > 8<<10 {
				b = b[len(b)-8<<10:]
			}
			t.Logf("nebraska's log (end):\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(n.Log)
			t.Fatalf("nebraska is not healthy after 60s:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// stopPID signals a process and waits for it, killing it after 10 s.
func stopPID(cmd *exec.Cmd, sig syscall.Signal) {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
