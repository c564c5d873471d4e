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
}

func within(pkg, tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }

func TestImportDirections(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports ","}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
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
