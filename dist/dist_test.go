package dist

import (
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/pubkey"
)

// augenBinary builds augen (test binaries carry no module list).
func augenBinary(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "augen-test")
	cmd := exec.Command("go", "build", "-trimpath", "-o", p, "github.com/augen-project/augen/cmd/augen")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

// TestSBOMAndProvenance: the SBOM names every module the binary's build
// information lists, the same each time; the provenance verifies with its
// key, not with another, and not after a subject changes.
func TestSBOMAndProvenance(t *testing.T) {
	dir := t.TempDir()
	bin := augenBinary(t, dir)
	b, err := ReadBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1258628400, 0)
	sbom, err := SBOM("1.0.0", []*Binary{b}, when)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := SBOM("1.0.0", []*Binary{b}, when)
	if string(sbom) != string(again) {
		t.Fatal("the SBOM differs for the same binary")
	}
	mods, err := SBOMModules(sbom)
	if err != nil || len(mods) != len(b.Deps) || len(mods) == 0 {
		t.Fatalf("%d modules in the SBOM, %d built in (%v)", len(mods), len(b.Deps), err)
	}
	for _, d := range b.Deps {
		if !strings.Contains(string(sbom), `"pkg:golang/`+d.Path+"@"+d.Version+`"`) {
			t.Fatalf("%s@%s missing", d.Path, d.Version)
		}
	}
	os.WriteFile(filepath.Join(dir, "sbom.spdx.json"), sbom, 0o644)
	st, err := NewStatement("1.0.0", "0123abc", []string{bin, filepath.Join(dir, "sbom.spdx.json")}, []*Binary{b}, when)
	if err != nil {
		t.Fatal(err)
	}
	key := testutil.Key(t, "a")
	env, err := st.Sign([]crypto.Signer{key})
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := pubkey.Fingerprint(key.Public())
	trusted := map[string]crypto.PublicKey{fp: key.Public()}
	v, err := Verify(env, trusted, 1, dir)
	if err != nil || len(v.Files) != 2 || v.SignedBy[0] != fp {
		t.Fatalf("%+v %v", v, err)
	}
	other := testutil.Key(t, "b")
	ofp, _ := pubkey.Fingerprint(other.Public())
	if _, err := Verify(env, map[string]crypto.PublicKey{ofp: other.Public()}, 1, dir); !errors.Is(err, ErrProvenance) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := Verify(env, trusted, 2, dir); !errors.Is(err, ErrProvenance) {
		t.Fatalf("threshold 2: %v", err)
	}
	raw := testutil.Read(t, bin)
	raw[len(raw)/2] ^= 1
	os.WriteFile(bin, raw, 0o755)
	if _, err := Verify(env, trusted, 1, dir); !errors.Is(err, ErrProvenance) || !strings.Contains(err.Error(), "augen-test has SHA-256") {
		t.Fatalf("changed binary: %v", err)
	}
}
