package pb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// TestGeneratedIsFresh regenerates the Go code from the .proto and compares
// it with the committed file (ignoring the protoc version line, which
// depends on the machine). Needs protoc and protoc-gen-go; AUGEN_REQUIRE_TOOLS
// turns a missing tool into a failure, as CI sets it.
func TestGeneratedIsFresh(t *testing.T) {
	testutil.RequireTools(t, "protoc", "protoc-gen-go")
	dir := t.TempDir()
	cmd := exec.Command("protoc", "--go_out="+dir, "--go_opt=paths=source_relative", "update_metadata.proto")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "update_metadata.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("update_metadata.pb.go")
	if err != nil {
		t.Fatal(err)
	}
	versions := regexp.MustCompile(`(?m)^// \tprotoc(-gen-go)? +v.*$`)
	if !bytes.Equal(versions.ReplaceAll(got, nil), versions.ReplaceAll(want, nil)) {
		t.Fatal("update_metadata.pb.go is stale: run go generate ./payload/internal/pb")
	}
}
