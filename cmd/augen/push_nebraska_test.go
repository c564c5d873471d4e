package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/push"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

// These tests push to a real Nebraska (testutil.StartNebraska; run by
// scripts/test-nebraska.sh with AUGEN_NEBRASKA set), each with a fresh
// database and the admin's one-time set-up of a dev-channel and its group.

func realNebraska(t *testing.T) *testutil.Nebraska {
	t.Helper()
	n := testutil.StartNebraska(t, testutil.NebraskaBin(t))
	devChannelWith(t, n.URL, nebraska.Options{})
	return n
}

func realArgs(n *testutil.Nebraska, policy, release string, more ...string) []string {
	args := []string{"--policy", policy, "--server", n.URL, "--channel", "dev-channel", "--store", "file://" + n.PackagesDir, "--public-url", n.URL + "/flatcar/"}
	return append(append(args, more...), release)
}

// offered asks, as a fresh machine at version on dev-channel, what it is
// offered: the version, or "noupdate".
func offered(t *testing.T, url, version string) string {
	t.Helper()
	sum := sha256.Sum256([]byte("test machine " + version))
	req := omaha.Request{AppID: nebraska.FlatcarAppID, Version: version, Track: "dev-channel", Board: "amd64-usr", MachineID: hex.EncodeToString(sum[:16])}
	resp, err := http.Post(url+"/v1/update/", "text/xml", bytes.NewReader(req.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	o, err := omaha.Read(resp.Body)
	if errors.Is(err, omaha.ErrNoUpdate) {
		return "noupdate"
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.Version
}

// tree lists every file under dir with its SHA-256.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		m[strings.TrimPrefix(p, dir)] = hex.EncodeToString(sum[:])
		return nil
	})
	return m
}

func sameTree(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("%s: the store changed: %d files before, %d after", what, len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: the store changed: %s", what, k)
		}
	}
}

// The floors flow: a floor pushed with --floor-reason, a later release
// pushed cleanly over it, machines below the floor offered the floor and
// at the floor the release, --requires-version refused on a channel
// without the floor it needs and accepted with it, push status listing the
// floors, a second push a no-op.
func TestRealNebraskaFloors(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	r1, policy := pushFixture(t, tmp, "4459.1.0", false)
	r2, _ := pushFixture(t, tmp, "4459.2.1", true)
	r3, _ := pushFixture(t, tmp, "4459.3.0", false, "--requires-version", "4459.2.0")
	const reason = "teaches update_engine to mount a btrfs /usr"

	rec := pushOK(t, realArgs(n, policy, r1, "--floor-reason", reason)...)
	if rec.Floor == nil || rec.Floor.Action != "set" || rec.Package.Action != "created" || rec.Channel.Action != "pointed" || len(rec.Path) != 1 || rec.Path[0].From != "0.0.0" {
		t.Fatalf("floor push: %+v", rec)
	}
	again := pushOK(t, realArgs(n, policy, r1, "--floor-reason", reason)...)
	if again.Floor.Action != "unchanged" || again.Package.Action != "reused" || again.Channel.Action != "unchanged" || len(again.Changed) != 0 || again.Files[0].Action != "present" {
		t.Fatalf("the same floor push again: %+v", again)
	}

	rec = pushOK(t, realArgs(n, policy, r2)...)
	if rec.Channel.Action != "pointed" || len(rec.Floors) != 1 || rec.Floors[0].Version != "4459.1.0" || rec.Floors[0].Reason != reason {
		t.Fatalf("push over the floor: %+v", rec)
	}
	if len(rec.Path) != 2 || rec.Path[0].Offered != "4459.1.0" || !rec.Path[0].Floor || rec.Path[1].From != "4459.1.0" || rec.Probe.From != "4459.1.0" || rec.Probe.Version != "4459.2.1" {
		t.Fatalf("update path: %+v, probe %+v", rec.Path, rec.Probe)
	}
	for v, want := range map[string]string{"0.0.0": "4459.1.0", "4000.0.0": "4459.1.0", "4459.0.9": "4459.1.0", "4459.1.0": "4459.2.1", "4459.2.0": "4459.2.1", "4459.2.1": "noupdate"} {
		if got := offered(t, n.URL, v); got != want {
			t.Errorf("a machine at %s is offered %s, want %s", v, got, want)
		}
	}
	again = pushOK(t, realArgs(n, policy, r2)...)
	if again.Package.Action != "reused" || again.Channel.Action != "unchanged" || len(again.Changed) != 0 {
		t.Fatalf("second push: %+v", again)
	}

	// 4459.3.0 needs machines at 4459.2.0 or later: the only floor,
	// 4459.1.0, would let a machine at 4459.1.0 reach it directly.
	before := tree(t, n.PackagesDir)
	code, _, errOut := runAugen(append([]string{"push"}, realArgs(n, policy, r3)...)...)
	if code != exitFailure || !strings.Contains(errOut, "requires machines to update from 4459.2.0 or later") || !strings.Contains(errOut, "nothing was uploaded or changed") {
		t.Fatalf("--requires-version without its floor: exit %d\n%s", code, errOut)
	}
	sameTree(t, "refused --requires-version", before, tree(t, n.PackagesDir))
	if got := offered(t, n.URL, "4459.2.0"); got != "4459.2.1" {
		t.Fatalf("after the refusal, a machine at 4459.2.0 is offered %s", got)
	}

	// With 4459.2.1 a floor too, it goes through.
	rec = pushOK(t, realArgs(n, policy, r2, "--floor-reason", "needed by 4459.3.0")...)
	if rec.Floor.Action != "set" || rec.Channel.Action != "unchanged" || rec.Package.Action != "reused" {
		t.Fatalf("marking 4459.2.1 a floor: %+v", rec)
	}
	rec = pushOK(t, realArgs(n, policy, r3)...)
	if len(rec.Path) != 3 || rec.Path[1].Offered != "4459.2.1" || rec.Probe.From != "4459.2.1" || rec.Probe.Version != "4459.3.0" {
		t.Fatalf("path to 4459.3.0: %+v", rec.Path)
	}
	for v, want := range map[string]string{"0.0.0": "4459.1.0", "4459.1.5": "4459.2.1", "4459.2.1": "4459.3.0"} {
		if got := offered(t, n.URL, v); got != want {
			t.Errorf("a machine at %s is offered %s, want %s", v, got, want)
		}
	}

	// push status lists the floors, oldest first, with their reasons.
	out := augen(t, "push", "status", "--server", n.URL, "--channel", "dev-channel")
	if !strings.Contains(out, "version  4459.3.0") || !strings.Contains(out, "floor    4459.1.0 (package ") || !strings.Contains(out, "): "+reason) || !strings.Contains(out, "): needed by 4459.3.0") {
		t.Fatalf("push status:\n%s", out)
	}
	var status struct {
		Floors          []push.FloorInfo `json:"floors"`
		FloorsSupported bool             `json:"floors_supported"`
	}
	if err := json.Unmarshal([]byte(augen(t, "push", "status", "--server", n.URL, "--channel", "dev-channel", "--json")), &status); err != nil {
		t.Fatal(err)
	}
	if !status.FloorsSupported || len(status.Floors) != 2 || status.Floors[0].Version != "4459.1.0" || status.Floors[1].Version != "4459.2.1" || status.Floors[0].Reason != reason {
		t.Fatalf("push status --json: %+v", status)
	}
}

// A same-version conflict is found before anything is uploaded: the store
// and the server stay as they were.
func TestRealNebraskaConflict(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	plain, policy := pushFixture(t, tmp, "4459.2.1", false)
	withExtra, _ := pushFixture(t, tmp, "4459.2.1", true)
	first := pushOK(t, realArgs(n, policy, plain)...)
	before := tree(t, n.PackagesDir)
	code, _, errOut := runAugen(append([]string{"push"}, realArgs(n, policy, withExtra)...)...)
	if code != exitFailure || !strings.Contains(errOut, "exists on the server") || !strings.Contains(errOut, "extra file oem-azure.gz is missing") || !strings.Contains(errOut, "nothing was uploaded") {
		t.Fatalf("same version, other contents: exit %d\n%s", code, errOut)
	}
	sameTree(t, "conflict", before, tree(t, n.PackagesDir))
	if _, err := os.Stat(filepath.Join(n.PackagesDir, "amd64-usr/4459.2.1/oem-azure.gz")); err == nil {
		t.Fatal("the refused bundle's extra file was uploaded")
	}
	var status struct{ Package *nebraska.Package }
	json.Unmarshal([]byte(augen(t, "push", "status", "--server", n.URL, "--channel", "dev-channel", "--json")), &status)
	if status.Package == nil || status.Package.ID != first.Package.ID || len(status.Package.ExtraFiles) != 0 {
		t.Fatalf("the server changed: %+v", status.Package)
	}
}

// failPut fails every channel PUT: a push interrupted after the upload and
// the package, before the channel.
type failPut struct{}

func (failPut) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/channels/") {
		return nil, errors.New("connection reset (test)")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// An interrupted push says what it changed and completes when run again.
func TestRealNebraskaInterrupted(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	release, policyPath := pushFixture(t, tmp, "4459.2.1", true)
	trust, err := loadPolicy(policyPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(release)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	ctx := context.Background()
	verified, _, err := verify.Bundle(ctx, f, info.Size(), trust, verify.Options{Channel: "dev-channel", TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := nebraska.New(n.URL, nebraska.Options{Transport: failPut{}, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open("file://"+n.PackagesDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = push.Push(ctx, push.Options{Bundle: verified, Channel: "dev-channel", Client: client, Store: st, PublicURL: n.URL + "/flatcar/"})
	var inc *push.IncompleteError
	if !errors.As(err, &inc) || errors.Is(err, push.ErrRefused) || !strings.Contains(err.Error(), "push incomplete") ||
		!strings.Contains(err.Error(), "created package 4459.2.1") || !strings.Contains(err.Error(), "uploaded "+n.URL+"/flatcar/amd64-usr/4459.2.1/flatcar_production_update.gz") ||
		!strings.Contains(err.Error(), "run the same push again") {
		t.Fatalf("interrupted push: %v", err)
	}
	rec := pushOK(t, realArgs(n, policyPath, release)...)
	if rec.Package.Action != "reused" || rec.Channel.Action != "pointed" || rec.Probe == nil || rec.Probe.Version != "4459.2.1" || rec.Files[0].Action != "present" {
		t.Fatalf("rerun: %+v", rec)
	}
}

// Usage mistakes come before the bundle is read: exit 2, with the
// channels the server has.
func TestRealNebraskaUsage(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	_, policy := pushFixture(t, tmp, "4459.1.0", false)
	big := filepath.Join(tmp, "big.tar")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 1<<30); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, _, errOut := runAugen("push", "--policy", policy, "--server", n.URL, "--channel", "lts", "--store", "file://"+n.PackagesDir, "--public-url", n.URL+"/flatcar/", big)
	if code != exitUsage || !strings.Contains(errOut, `channel "lts" does not exist`) || !strings.Contains(errOut, "alpha, beta, dev-channel, edge, stable") || strings.Contains(errOut, "verify") {
		t.Fatalf("a channel the server lacks: exit %d\n%s", code, errOut)
	}
	t.Logf("a channel the server lacks, on a 1 GiB bundle: exit 2 after %v", time.Since(start))
}

// push status --verify downloads what the channel serves and verifies it.
func TestRealNebraskaStatusVerify(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	release, policy := pushFixture(t, tmp, "4459.2.1", true)
	pushOK(t, realArgs(n, policy, release)...)
	out := augen(t, "push", "status", "--server", n.URL, "--channel", "dev-channel", "--verify", "--policy", policy)
	if !strings.Contains(out, "verify   flatcar_production_update.gz: OK") || !strings.Contains(out, "verify   oem-azure.gz: OK") {
		t.Fatalf("push status --verify:\n%s", out)
	}
	// A served file that is not what Nebraska offers fails, exit 3.
	p := filepath.Join(n.PackagesDir, "amd64-usr/4459.2.1/oem-azure.gz")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	code, out, _ := runAugen("push", "status", "--server", n.URL, "--channel", "dev-channel", "--verify", "--policy", policy)
	if code != exitVerify || !strings.Contains(out, "oem-azure.gz: FAILED: served SHA-1") {
		t.Fatalf("tampered extra: exit %d\n%s", code, out)
	}
}

// A release folder's bundle (two sysext extras) pushed to the real
// Nebraska: the extra files registered as Flatcar's upload_package does
// (name, size, SHA-1 base64, SHA-256 hex), read back from the server, and
// offered to a machine as the probe reads them.
func TestRealNebraskaFolderExtras(t *testing.T) {
	n := realNebraska(t)
	tmp, _ := fixtures(t)
	dir, keys := folder(t, "amd64")
	release := tmp + "/folder.tar"
	augen(t, "release", dir, "--signing-key", keys+"/buildbot.asc", "--secure-boot-cert", keys+"/sb.crt",
		"--key", "file:"+tmp+"/key-a.pem", "--bundle-key", "file:"+tmp+"/key-b.pem", "-o", release)
	vec, _ := filepath.Abs(root + "vectors")
	policy := tmp + "/folder-policy.json"
	augen(t, "policy", "init", "--bundle-key", vec+"/TEST-ONLY-key-b.pub.pem", "--payload-key", vec+"/TEST-ONLY-key-a.pub.pem", "--secure-boot-cert", keys+"/sb.crt", "-o", policy)
	rec := pushOK(t, realArgs(n, policy, release)...)
	if rec.Probe == nil || rec.Probe.Extra != 2 {
		t.Fatalf("probe: %+v", rec.Probe)
	}
	var inspected struct {
		Statement struct {
			Predicate struct{ Payloads []bundle.PayloadEntry }
		}
	}
	json.Unmarshal([]byte(augen(t, "bundle", "inspect", release, "--json")), &inspected)
	st := inspected.Statement
	var status struct{ Package *nebraska.Package }
	json.Unmarshal([]byte(augen(t, "push", "status", "--server", n.URL, "--channel", "dev-channel", "--json")), &status)
	if status.Package == nil || len(status.Package.ExtraFiles) != 2 {
		t.Fatalf("server package: %+v", status.Package)
	}
	server := map[string]nebraska.ExtraFile{}
	for _, f := range status.Package.ExtraFiles {
		server[f.Name] = f
	}
	checked := 0
	for _, p := range st.Predicate.Payloads {
		if p.Kind != bundle.KindExtra {
			continue
		}
		f := server[p.Name]
		if f.Size != strconv.FormatInt(p.Size, 10) || f.Hash != p.SHA1Base64 || f.Hash256 != p.SHA256Hex || p.Sysext == nil {
			t.Errorf("%s: server %+v, bundle %+v", p.Name, f, p)
		}
		checked++
	}
	if checked != 2 {
		t.Fatalf("%d extras in the statement", checked)
	}
}
