package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/nebraska/nebraskatest"
	"github.com/augen-project/augen/store"
)

// pushFixture builds a release of version (with one extra payload) and a
// policy that lets its bundle key publish to dev-channel. more are further
// release flags (--requires-version).
func pushFixture(t *testing.T, tmp, version string, withExtra bool, more ...string) (release, policy string) {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", "1258628400")
	args := []string{"release", imageOf(t, version), "--usr-size", "4MiB", "--version", version, "--key", "file:" + tmp + "/key-a.pem", "--bundle-key", "file:" + tmp + "/key-b.pem"}
	if withExtra {
		raw := bytes.Repeat([]byte("oem partition "), 64<<10/14+1)[:64<<10]
		if err := os.WriteFile(tmp+"/oem.raw", raw, 0o644); err != nil {
			t.Fatal(err)
		}
		augen(t, "payload", "build", "--image", tmp+"/oem.raw", "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/oem-azure.gz")
		args = append(args, "--extra", tmp+"/oem-azure.gz")
	}
	sum := sha256.Sum256([]byte(strings.Join(more, "\x00")))
	release = filepath.Join(tmp, fmt.Sprintf("release-%s-%v-%x.tar", version, withExtra, sum[:4]))
	augen(t, append(append(args, more...), "-o", release)...)
	policy = tmp + "/policy.json"
	vec, _ := filepath.Abs(root + "vectors")
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", policy)
	return release, policy
}

// imageOf is a test production image of version: the two in
// testdata/image, or one made by make-image.sh (once per test binary).
func imageOf(t *testing.T, version string) string {
	t.Helper()
	switch version {
	case "4459.2.1":
		return root + "image/flatcar_test_image.bin.bz2"
	case "4459.1.0":
		return root + "image/flatcar_test_image-4459.1.0.bin.bz2"
	}
	madeMu.Lock()
	defer madeMu.Unlock()
	if made[version] == "" {
		testutil.RequireTools(t, "faketime", "sgdisk", "mkfs.ext4", "veritysetup", "mcopy")
		if madeDir == "" {
			var err error
			if madeDir, err = os.MkdirTemp("", "augen-images-"); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", root+"image/make-image.sh", madeDir)
		cmd.Env = append(os.Environ(), "VERSION="+version)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make-image.sh %s: %v\n%s", version, err, out)
		}
		made[version] = filepath.Join(madeDir, "flatcar_test_image-"+version+".bin.bz2")
	}
	return made[version]
}

var (
	madeMu  sync.Mutex
	made    = map[string]string{}
	madeDir string
)

// devChannel does the admin's one-time setup recorded in the transcripts:
// a dev-channel and a group whose track routes clients to it.
func devChannel(t *testing.T, s *nebraskatest.Server) {
	t.Helper()
	devChannelWith(t, s.URL, nebraska.Options{Token: s.Token})
}

func devChannelWith(t *testing.T, url string, opts nebraska.Options) {
	t.Helper()
	c, err := nebraska.New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ch, err := c.CreateChannel(ctx, nebraska.FlatcarAppID, nebraska.ChannelConfig{Name: "dev-channel", Color: "#777777", Arch: 1, ApplicationID: nebraska.FlatcarAppID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(ctx, nebraska.FlatcarAppID, nebraska.GroupConfig{Name: "Dev (AMD64)", Description: "dev", ChannelID: ch.ID, Track: "dev-channel",
		PolicyUpdatesEnabled: true, PolicyTimezone: "UTC", PolicyPeriodInterval: "1 minutes", PolicyMaxUpdatesPerPeriod: 999999, PolicyUpdateTimeout: "60 minutes"}); err != nil {
		t.Fatal(err)
	}
}

type pushRecord struct {
	DryRun bool `json:"dry_run"`
	Floor  *struct {
		Reason, Action string
	} `json:"floor"`
	Floors []struct {
		Version, Reason string
	} `json:"floors"`
	Path []struct {
		From, Offered string
		Floor         bool
	} `json:"path"`
	Changed []string `json:"changed"`
	Files   []struct {
		Name, URL, Action string
	} `json:"files"`
	Package struct{ ID, Action string } `json:"package"`
	Channel struct {
		Action       string `json:"action"`
		OldPackageID string `json:"old_package_id"`
	} `json:"channel"`
	Probe *struct {
		From, Version, URL string
		Size               int64
		Extra              int `json:"extra_files"`
	} `json:"probe"`
	Error string `json:"error"`
}

func runAugen(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// pushOK runs augen push --json and returns its record.
func pushOK(t *testing.T, args ...string) pushRecord {
	t.Helper()
	code, out, errOut := runAugen(append([]string{"push", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("augen push %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
	}
	t.Logf("augen push:\n%s", errOut)
	var rec pushRecord
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	return rec
}

// changes lists the requests that change the server's state (the Omaha
// probe registers an instance, like any client, and is listed too).
func changes(log []nebraskatest.Logged) []string {
	var out []string
	for _, l := range log {
		if l.Method != http.MethodGet {
			out = append(out, l.Method+" "+l.Path)
		}
	}
	return out
}

// checkServed downloads the offered payload and verifies it as a client
// would, with the payload key.
func checkServed(t *testing.T, tmp, url, caFile string) {
	t.Helper()
	client := http.DefaultClient
	if caFile != "" {
		var err error
		if client, err = storeClient(caFile); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	dl := filepath.Join(t.TempDir(), "downloaded.gz")
	os.WriteFile(dl, b.Bytes(), 0o644)
	vec, _ := filepath.Abs(root + "vectors")
	augen(t, "payload", "verify", "--pubkey", vec+"/TEST-ONLY-key-a.pub.pem", dl)
}

// The acceptance flow with a directory store that the test Nebraska serves
// at /flatcar/, like -host-flatcar-packages.
func TestPushDirectory(t *testing.T) {
	tmp, _ := fixtures(t)
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	args := []string{"--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://" + s.PackagesDir, "--public-url", s.URL + "/flatcar/", release}

	// --dry-run: only reads, nothing stored.
	before := len(s.Log())
	rec := pushOK(t, append([]string{"--dry-run"}, args...)...)
	if ch := changes(s.Log()[before:]); len(ch) != 0 || rec.Package.Action != "would create" || rec.Channel.Action != "would point" {
		t.Fatalf("dry run changed %v, record %+v", ch, rec)
	}
	if ents, _ := os.ReadDir(s.PackagesDir); len(ents) != 0 {
		t.Fatalf("dry run stored %d entries", len(ents))
	}

	rec = pushOK(t, args...)
	if rec.Package.Action != "created" || rec.Channel.Action != "pointed" || rec.Probe == nil || rec.Probe.Version != "4459.2.1" || len(rec.Files) != 2 {
		t.Fatalf("first push: %+v", rec)
	}
	for _, f := range rec.Files {
		if f.Action != "uploaded" {
			t.Errorf("%s: %s", f.Name, f.Action)
		}
	}
	checkServed(t, tmp, rec.Probe.URL, "")
	var status struct {
		Package *nebraska.Package `json:"package"`
		URL     string            `json:"url"`
		Groups  []struct{ Track string }
	}
	if err := json.Unmarshal([]byte(augen(t, "push", "status", "--server", s.URL, "--channel", "dev-channel", "--json")), &status); err != nil {
		t.Fatal(err)
	}
	if status.Package == nil || status.Package.Version != "4459.2.1" || status.URL != rec.Probe.URL || len(status.Package.ExtraFiles) != 1 || len(status.Groups) != 1 {
		t.Fatalf("push status: %+v", status)
	}
	if out := augen(t, "push", "status", "--server", s.URL, "--channel", "dev-channel"); !strings.Contains(out, "version  4459.2.1") || !strings.Contains(out, "track dev-channel, updates enabled") {
		t.Fatalf("push status:\n%s", out)
	}

	// The same push again changes nothing (the probe is a client's check).
	before = len(s.Log())
	again := pushOK(t, args...)
	if ch := changes(s.Log()[before:]); len(ch) != 1 || ch[0] != "POST /v1/update/" {
		t.Fatalf("second push changed %v", ch)
	}
	if again.Package.Action != "reused" || again.Package.ID != rec.Package.ID || again.Channel.Action != "unchanged" || again.Files[0].Action != "present" {
		t.Fatalf("second push: %+v", again)
	}

	// A different bundle with the same version is refused before the channel.
	other, _ := pushFixture(t, tmp, "4459.2.1", false)
	before = len(s.Log())
	code, _, errOut := runAugen(append([]string{"push"}, append(args[:len(args)-1:len(args)-1], other)...)...)
	if code == 0 || !strings.Contains(errOut, "exists on the server") || !strings.Contains(errOut, "extra file oem-azure.gz is not in the bundle") {
		t.Fatalf("different bundle, same version: exit %d\n%s", code, errOut)
	}
	for _, c := range changes(s.Log()[before:]) {
		if strings.Contains(c, "/channels/") || strings.Contains(c, "/packages") {
			t.Fatalf("refused push still sent %s", c)
		}
	}
}

// A push interrupted between the upload and the channel update completes
// when run again.
func TestPushInterrupted(t *testing.T) {
	tmp, _ := fixtures(t)
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	args := []string{"push", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://" + s.PackagesDir, "--public-url", s.URL + "/flatcar/", release}
	s.KillOn(func(method, path string) bool { return method == http.MethodPut })
	if code, _, errOut := runAugen(args...); code == 0 || !strings.Contains(errOut, "pointing dev-channel") {
		t.Fatalf("push against a dying server: exit %d\n%s", code, errOut)
	}
	s.KillOn(nil)
	s.SetDown(false)
	rec := pushOK(t, args[1:]...)
	if rec.Package.Action != "reused" || rec.Channel.Action != "pointed" || rec.Probe == nil || rec.Files[0].Action != "present" {
		t.Fatalf("rerun: %+v", rec)
	}
}

// Each of these stops before the channel changes, with one line and a
// non-zero exit.
func TestPushRefusals(t *testing.T) {
	tmp, _ := fixtures(t)
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	const secret = "tok-3f9a1c77e2-never-print"
	check := func(name string, s *nebraskatest.Server, wantCode int, want string, args ...string) {
		t.Helper()
		before := len(s.Log())
		code, out, errOut := runAugen(append([]string{"push"}, args...)...)
		if code != wantCode || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d (want %d), stderr:\n%s", name, code, wantCode, errOut)
		}
		if strings.Count(errOut, "augen: error:") != 1 {
			t.Errorf("%s: want one error line:\n%s", name, errOut)
		}
		if strings.Contains(out+errOut, secret) {
			t.Errorf("%s: the token appears in the output", name)
		}
		for _, c := range changes(s.Log()[before:]) {
			if strings.Contains(c, "/channels/") {
				t.Errorf("%s: the channel was changed: %s", name, c)
			}
		}
	}
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	store := "file://" + s.PackagesDir
	pub := s.URL + "/flatcar/"

	b, _ := os.ReadFile(release)
	b[bytes.Index(b, []byte("CrAU"))+3000] ^= 1
	os.WriteFile(tmp+"/tampered.tar", b, 0o644)
	check("tampered bundle", s, exitVerify, "flatcar_production_update.gz", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", store, "--public-url", pub, tmp+"/tampered.tar")
	check("channel the policy lacks", s, exitUsage, `allows no channel "extended" (it allows alpha, beta, dev-channel, edge, lts, stable)`, "--policy", policy, "--server", s.URL, "--channel", "extended", "--store", store, "--public-url", pub, release)

	// A store whose client-facing URL serves something else.
	elsewhere := t.TempDir()
	check("store serves another file", s, exitFailure, "serves other bytes", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://"+elsewhere, "--public-url", pub, release)

	// 401 and 403, with the token from a file and from the environment.
	s.Token, s.ViewerToken = secret, secret+"-viewer"
	check("no token", s, exitFailure, "HTTP 401: not authenticated", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", store, "--public-url", pub, release)
	tokFile := tmp + "/viewer.token"
	os.WriteFile(tokFile, []byte(secret+"-viewer\n"), 0o600)
	check("viewer token", s, exitFailure, "HTTP 403", "--policy", policy, "--server", s.URL, "--token-file", tokFile, "--channel", "dev-channel", "--store", store, "--public-url", pub, release)
	for _, l := range s.Log() {
		if l.Authorization != "" && l.Path != "" && !strings.HasPrefix(l.Path, "/api/") {
			t.Errorf("the token was sent to %s", l.Path)
		}
	}
	t.Setenv("AUGEN_TOKEN", secret)
	rec := pushOK(t, "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", store, "--public-url", pub, release)
	if rec.Channel.Action != "pointed" {
		t.Fatalf("with the admin token: %+v", rec)
	}
}

// TLS: a server with a private CA is refused without --ca-file.
func TestPushTLS(t *testing.T) {
	tmp, _ := fixtures(t)
	release, policy := pushFixture(t, tmp, "4459.2.1", false)
	s := nebraskatest.New()
	s.PackagesDir = t.TempDir()
	srv := httptestTLS(t, s)
	s.URL = srv
	devChannelTLS(t, s, tmp)
	code, _, errOut := runAugen("push", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://"+s.PackagesDir, "--public-url", s.URL+"/flatcar/", release)
	if code == 0 || !strings.Contains(errOut, "TLS") || !strings.Contains(errOut, "--ca-file") {
		t.Fatalf("private CA without --ca-file: exit %d\n%s", code, errOut)
	}
	rec := pushOK(t, "--policy", policy, "--server", s.URL, "--ca-file", tmp+"/tls-ca.pem", "--channel", "dev-channel", "--store", "file://"+s.PackagesDir, "--public-url", s.URL+"/flatcar/", release)
	if rec.Probe == nil {
		t.Fatalf("%+v", rec)
	}
}

// A real nginx taking WebDAV PUT over TLS is the store; the test Nebraska
// points clients at it.
func TestPushNginx(t *testing.T) {
	tmp, _ := fixtures(t)
	base, ca := testutil.StartNginxDAV(t, t.TempDir())
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	s := nebraskatest.Start(t)
	devChannel(t, s)
	rec := pushOK(t, "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", base, "--ca-file", ca, release)
	if rec.Probe == nil || !strings.HasPrefix(rec.Probe.URL, base+"amd64-usr/4459.2.1/") {
		t.Fatalf("%+v", rec)
	}
	checkServed(t, tmp, rec.Probe.URL, ca)
	again := pushOK(t, "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", base, "--ca-file", ca, release)
	if again.Files[0].Action != "present" || again.Channel.Action != "unchanged" {
		t.Fatalf("second push: %+v", again)
	}
}

// A real S3 gateway (versitygw, POSIX backend) is the store.
func TestPushS3(t *testing.T) {
	tmp, _ := fixtures(t)
	const access, secret = "augentestaccess", "augentestsecret0123456789"
	endpoint := testutil.StartVersityGW(t, t.TempDir(), access, secret)
	mc, err := minio.New(strings.TrimPrefix(endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := mc.MakeBucket(ctx, "releases", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	// Clients download anonymously.
	pol := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::releases/*"]}]}`
	if err := mc.SetBucketPolicy(ctx, "releases", pol); err != nil {
		t.Fatal(err)
	}
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	s := nebraskatest.Start(t)
	devChannel(t, s)
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	rec := pushOK(t, "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "s3://releases/flatcar", release)
	want := endpoint + "/releases/flatcar/amd64-usr/4459.2.1/flatcar_production_update.gz"
	if rec.Probe == nil || rec.Probe.URL != want {
		t.Fatalf("%+v, want probe URL %s", rec, want)
	}
	checkServed(t, tmp, rec.Probe.URL, "")
}

func storeClient(caFile string) (*http.Client, error) { return store.HTTPClient(caFile) }

// httptestTLS serves h over TLS with a fresh private CA written to the
// fixture directory as tls-ca.pem by devChannelTLS.
func httptestTLS(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is the test
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tlsServers[srv.URL] = srv
	return srv.URL
}

var tlsServers = map[string]*httptest.Server{}

func devChannelTLS(t *testing.T, s *nebraskatest.Server, tmp string) {
	t.Helper()
	srv := tlsServers[s.URL]
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(tmp+"/tls-ca.pem", pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	devChannelWith(t, s.URL, nebraska.Options{Transport: srv.Client().Transport})
}

// A version lower than the one the channel serves is refused with nothing
// changed (machines do not downgrade: it would only stop offering
// updates), and with --allow-older is a warning; no group routing the
// track to the channel is a warning (nobody gets the release; the probe is
// skipped).
func TestPushWarnings(t *testing.T) {
	tmp, _ := fixtures(t)
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	// The channel serves a newer version already.
	c, _ := nebraska.New(s.URL, nebraska.Options{})
	ctx := context.Background()
	newer, err := c.CreatePackage(ctx, nebraska.FlatcarAppID, nebraska.PackageConfig{ApplicationID: nebraska.FlatcarAppID, Arch: 1, Type: 1, Version: "9999.0.0",
		URL: "http://x/", Filename: "f.gz", Description: "d", Size: "1", Hash: "h", FlatcarAction: &nebraska.FlatcarActionConf{SHA256: "s"}})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := c.FindChannel(ctx, nebraska.FlatcarAppID, "dev-channel", 1)
	if _, err := c.PutChannel(ctx, nebraska.FlatcarAppID, ch.ID, nebraska.ChannelConfig{Name: ch.Name, Color: ch.Color, Arch: 1, ApplicationID: nebraska.FlatcarAppID, PackageID: &newer.ID}); err != nil {
		t.Fatal(err)
	}
	release, policy := pushFixture(t, tmp, "4459.2.1", false)
	args := func(extra ...string) []string {
		return append([]string{"push", "--json", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://" + s.PackagesDir, "--public-url", s.URL + "/flatcar/", release}, extra...)
	}
	code, out, errOut := runAugen(args()...)
	if code != exitFailure || !strings.Contains(errOut, "dev-channel serves 9999.0.0, newer than this release 4459.2.1") ||
		!strings.Contains(errOut, "nothing was uploaded or changed") || strings.Contains(out, `"changed": [
    "`) {
		t.Fatalf("older version: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runAugen(args("--allow-older")...)
	if code != 0 || !strings.Contains(errOut, "clients do not downgrade") || !strings.Contains(out, `"old_version": "9999.0.0"`) {
		t.Fatalf("older version, --allow-older: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runAugen(args("--track", "beta-testers")...)
	if code != 0 || !strings.Contains(errOut, `no group with track "beta-testers"`) || strings.Contains(out, `"probe"`) {
		t.Fatalf("track without a group: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Usage mistakes are reported before the bundle is read, with exit 2: a
// directory store without --public-url, a channel the policy does not
// have, a channel the server does not have (with the ones it has). The
// bundle here is 1 GiB of nothing: verifying it would take a while and
// fail otherwise.
func TestPushEarlyUsageErrors(t *testing.T) {
	tmp, _ := fixtures(t)
	vec, _ := filepath.Abs(root + "vectors")
	policy := tmp + "/policy.json"
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "-o", policy)
	big := filepath.Join(tmp, "big.tar")
	os.WriteFile(big, nil, 0o644)
	if err := os.Truncate(big, 1<<30); err != nil {
		t.Fatal(err)
	}
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	dir := "file://" + s.PackagesDir
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"no public URL", "has no URL of its own: give --public-url", []string{"--channel", "dev-channel", "--store", dir}},
		{"channel not in the policy", `the policy ` + policy + ` allows no channel "nightly"`, []string{"--channel", "nightly", "--store", dir, "--public-url", s.URL + "/flatcar/"}},
		{"channel not on the server", `channel "lts" does not exist on ` + s.URL + ` (it has: alpha, beta, dev-channel, edge, stable)`, []string{"--channel", "lts", "--store", dir, "--public-url", s.URL + "/flatcar/"}},
		{"empty floor reason", "--floor-reason: give the reason", []string{"--channel", "dev-channel", "--store", dir, "--public-url", s.URL + "/flatcar/", "--floor-reason", " "}},
		{"floors on a server without them", "has no floors", []string{"--channel", "dev-channel", "--store", dir, "--public-url", s.URL + "/flatcar/", "--floor-reason", "btrfs"}},
	} {
		start := time.Now()
		code, _, errOut := runAugen(append(append([]string{"push", "--policy", policy, "--server", s.URL}, c.args...), big)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "verify") {
			t.Errorf("%s: exit %d\n%s", c.name, code, errOut)
		}
		t.Logf("%s: exit %d after %v", c.name, code, time.Since(start))
	}
	if ents, _ := os.ReadDir(s.PackagesDir); len(ents) != 0 {
		t.Fatalf("a refused push stored %d entries", len(ents))
	}
}

// push --old applies a bundle's deltas on the bastion; without it (or
// --allow-unapplied-deltas) a delta is not published.
func TestPushOld(t *testing.T) {
	tmp, _ := fixtures(t)
	oldImage, _ := filepath.Abs(imageOf(t, "4459.1.0"))
	release, policy := pushFixture(t, tmp, "4459.2.1", false, "--delta-from", "4459.1.0="+oldImage)
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	args := []string{"--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://" + s.PackagesDir, "--public-url", s.URL + "/flatcar/"}
	code, _, errOut := runAugen(append(append([]string{"push"}, args...), release)...)
	if code != exitVerify || !strings.Contains(errOut, "4459.1.0") {
		t.Fatalf("a delta without --old: exit %d\n%s", code, errOut)
	}
	rec := pushOK(t, append(args, "--usr-size", "4MiB", "--old", "4459.1.0="+oldImage, release)...)
	if len(rec.Files) != 2 || rec.Channel.Action != "pointed" {
		t.Fatalf("with --old: %+v", rec)
	}
	// Push says what happens to the delta: served, but offered to nobody.
	if code, _, errOut := runAugen(append(append([]string{"push"}, args...), "--usr-size", "4MiB", "--old", "4459.1.0="+oldImage, release)...); code != 0 ||
		!strings.Contains(errOut, "delta-from-4459.1.0.gz uploaded but not registered") {
		t.Fatalf("the delta's note: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runAugen(append(append([]string{"push"}, args...), "--old", "4459.1.0", release)...); code != exitUsage || !strings.Contains(errOut, "want VERSION=IMAGE") {
		t.Fatalf("--old without an image: exit %d\n%s", code, errOut)
	}
}

// --requires-version must name an older version; the statement carries it
// and verify and bundle inspect show it.
func TestRequiresVersion(t *testing.T) {
	tmp, _ := fixtures(t)
	for _, v := range []string{"4459.2.1", "5000.0.0", "4459"} {
		code, _, errOut := runAugen("release", imageOf(t, "4459.2.1"), "--usr-size", "4MiB", "--version", "4459.2.1", "--key", "file:"+tmp+"/key-a.pem", "--requires-version", v, "-o", tmp+"/x.tar")
		if code != exitUsage || !strings.Contains(errOut, "older than 4459.2.1") {
			t.Errorf("--requires-version %s: exit %d\n%s", v, code, errOut)
		}
	}
	if _, err := os.Stat(tmp + "/x.tar"); err == nil {
		t.Fatal("a refused release was written")
	}
	release, policy := pushFixture(t, tmp, "4459.2.1", false, "--requires-version", "4459.1.0")
	for _, args := range [][]string{{"verify", "--policy", policy, release}, {"bundle", "inspect", release}} {
		if out := augen(t, args...); !strings.Contains(out, "requires machines at 4459.1.0 or later") {
			t.Errorf("%s:\n%s", args[0], out)
		}
	}
}

// A token file or a store password file that others can read is refused
// with the key files' message, before anything is sent.
func TestSecretFilesPrivate(t *testing.T) {
	tmp, _ := fixtures(t)
	s := nebraskatest.Start(t)
	tok := tmp + "/nebraska.token"
	os.WriteFile(tok, []byte("secret-token\n"), 0o644)
	os.Chmod(tok, 0o644)
	code, _, errOut := runAugen("push", "status", "--server", s.URL, "--token-file", tok, "--channel", "stable")
	if code == 0 || !strings.Contains(errOut, "has mode 0644: others can read the secret in it (chmod 600 it") || strings.Contains(errOut, "secret-token") {
		t.Fatalf("0644 token file: exit %d\n%s", code, errOut)
	}
	if n := len(s.Log()); n != 0 {
		t.Fatalf("%d requests sent with a refused token file", n)
	}
	pw := tmp + "/store.password"
	os.WriteFile(pw, []byte("hunter2\n"), 0o640)
	os.Chmod(pw, 0o640)
	t.Setenv("AUGEN_STORE_PASSWORD_FILE", pw)
	code, _, errOut = runAugen("push", "--policy", tmp+"/none.json", "--server", s.URL, "--channel", "stable", "--store", "https://127.0.0.1:1/x/", tmp+"/none.tar")
	if code == 0 || !strings.Contains(errOut, "has mode 0640: others can read the secret in it") || strings.Contains(errOut, "hunter2") {
		t.Fatalf("0640 store password file: exit %d\n%s", code, errOut)
	}
}

// Keys named in the policy are shown by name next to their fingerprint.
func TestNamedKeys(t *testing.T) {
	tmp, vec := fixtures(t)
	release, _ := pushFixture(t, tmp, "4459.2.1", false)
	policy := tmp + "/named.json"
	augen(t, "policy", "init", "--bundle-key", "alice="+vec+"/TEST-ONLY-key-b.pub.pem", "--bundle-key", "bob="+vec+"/TEST-ONLY-key-a.pub.pem",
		"--payload-key", "bob="+vec+"/TEST-ONLY-key-a.pub.pem", "-o", policy)
	const b = "alice (f82e2955179e9939e041eab90d4a14a3be71f8ef9407b6e8dd607df748ddeed2)"
	const a = "(5783a7e03b32d98eef74a928ca9c69b11c9c3a832ee9f4717612e2cb64558f00)"
	if out := augen(t, "verify", "--policy", policy, release); !strings.Contains(out, "signed by "+b) || !strings.Contains(out, "payload key bob "+a) {
		t.Errorf("verify:\n%s", out)
	}
	if out := augen(t, "bundle", "inspect", "--policy", policy, release); !strings.Contains(out, "signed by "+b) {
		t.Errorf("bundle inspect:\n%s", out)
	}
	code, _, errOut := runAugen("bundle", "sign", release, "--policy", policy, "--key", "file:"+tmp+"/key-a.pem", "-o", tmp+"/signed.tar")
	if code != 0 || !strings.Contains(errOut, "already signed by "+b) {
		t.Errorf("bundle sign: exit %d\n%s", code, errOut)
	}
	s := nebraskatest.Start(t)
	s.PackagesDir = t.TempDir()
	devChannel(t, s)
	code, _, errOut = runAugen("push", "--policy", policy, "--server", s.URL, "--channel", "dev-channel", "--store", "file://"+s.PackagesDir, "--public-url", s.URL+"/flatcar/", "--dry-run", tmp+"/signed.tar")
	if code != 0 || !strings.Contains(errOut, "signed by bob "+a+", "+b) {
		t.Errorf("push: exit %d\n%s", code, errOut)
	}
	if code, _, errOut := runAugen("policy", "init", "--bundle-key", "x="+vec+"/TEST-ONLY-key-a.pub.pem", "--payload-key", "y="+vec+"/TEST-ONLY-key-a.pub.pem"); code != exitUsage || !strings.Contains(errOut, `named both "x" and "y"`) {
		t.Errorf("a key named twice: exit %d\n%s", code, errOut)
	}
	// Names are checked: none may pass for a fingerprint or repeat.
	if code, _, errOut := runAugen("policy", "init", "--bundle-key", "x="+vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", "x="+vec+"/TEST-ONLY-key-a.pub.pem"); code != exitUsage || !strings.Contains(errOut, `two keys are named "x"`) {
		t.Errorf("a repeated name: exit %d\n%s", code, errOut)
	}
}
