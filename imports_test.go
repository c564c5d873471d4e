package augen_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/augen-project/augen/"

// forbidden lists, for each part of the tree, what it must not import:
// DESIGN.md's layering. signer signs digests and knows nothing of payloads;
// payload knows nothing of key backends; nothing but cmd imports cmd; verify
// builds without signer or network code; push signs nothing.
var forbidden = map[string][]string{
	"signer":   {module + "payload", module + "cmd"},
	"payload":  {module + "signer", module + "cmd"},
	"internal": {module + "signer", module + "cmd"},
	"verify":   {module + "signer", module + "cmd", "net", "net/http"},
	// push publishes what verify accepted; it never holds a signing key.
	"push": {module + "signer", module + "cmd"},
	// release builds and signs through the signers it is given.
	"release": {module + "signer", module + "cmd"},
	// The update-service client and the stores push uploads to hold no key.
	"nebraska": {module + "signer", module + "cmd"},
	"store":    {module + "signer", module + "cmd"},
}

func within(pkg, tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }

// packageImports lists every package of the module with its imports
// ("pkg imp1,imp2,…" lines, from go list).
func packageImports(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports ","}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestImportDirections(t *testing.T) {
	checked := 0
	for _, line := range packageImports(t) {
		pkg, imports, _ := strings.Cut(line, " ")
		rel := strings.TrimPrefix(pkg, module)
		for tree, bad := range forbidden {
			if !within(rel, tree) {
				continue
			}
			checked++
			for _, imp := range strings.Split(imports, ",") {
				for _, b := range bad {
					if within(imp, b) {
						t.Errorf("%s imports %s", pkg, imp)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked", checked)
	}
}

// cmd/augen is flags, calls and printing: it imports the project's
// packages (the libraries, and the small helpers under internal/: output
// files, temporary files, file kinds, cancellable copies), pflag and the
// standard library, nothing else.
func TestCommandImportsOnlyLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "./cmd/augen").Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, imp := range strings.Fields(string(out)) {
		n++
		switch {
		case imp == "github.com/spf13/pflag":
		case strings.HasPrefix(imp, module) || imp == strings.TrimSuffix(module, "/"):
		case !strings.Contains(strings.Split(imp, "/")[0], "."):
			// the standard library
		default:
			t.Errorf("cmd/augen imports %s directly", imp)
		}
	}
	if n < 10 {
		t.Fatalf("only %d imports listed", n)
	}
}

// Arrows point down: a package under an internal/ folder imports only
// other internal packages and the root package augen, never the public
// libraries built on it (payload/internal/crafted, the crafted corpus, is
// under payload and may use it).
func TestInternalImportsPointDown(t *testing.T) {
	checked := 0
	for _, line := range packageImports(t) {
		pkg, imports, _ := strings.Cut(line, " ")
		i := strings.Index(pkg+"/", "/internal/")
		if i < 0 {
			continue
		}
		parent := pkg[:i] // the tree the internal package belongs to
		checked++
		for _, imp := range strings.Split(imports, ",") {
			if !strings.HasPrefix(imp, module) || strings.Contains(imp+"/", "/internal/") || within(imp, parent) && parent+"/" != module {
				continue
			}
			t.Errorf("%s imports %s: an internal package imports only internal ones (and its own tree's)", pkg, imp)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d internal packages checked", checked)
	}
}
