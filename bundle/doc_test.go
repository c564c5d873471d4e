package bundle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/augen-project/augen/internal/testutil"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/generate"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the worked example in doc/bundle-format.md")

// TestBundleWorkedExample regenerates the worked example that ends
// doc/bundle-format.md, byte for byte.
func TestBundleWorkedExample(t *testing.T) {
	img := append(bytes.Repeat([]byte{0xff}, 4096), make([]byte, 4096)...)
	opts := generate.BuildOptions{SignatureSizes: []int{256}, Sign: payload.SignWith([]crypto.Signer{testutil.Key(t, "a")})}
	opts.Image = generate.Input{R: bytes.NewReader(img), Size: int64(len(img))}
	kernel := []byte("not a kernel\n")
	opts.Kernel = generate.Input{R: bytes.NewReader(kernel), Size: int64(len(kernel))}
	var p bytes.Buffer
	if _, err := generate.BuildFull(context.Background(), &p, opts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "update.gz")
	os.WriteFile(path, p.Bytes(), 0o644)
	var b bytes.Buffer
	st, err := Build(&b, BuildOptions{Version: "1.2.3", Board: "amd64-usr", Augen: "example", MTime: time.Unix(1258628400, 0),
		Payloads:    []PayloadFile{{Path: path, Name: "flatcar_production_update.gz", Kind: KindFull}},
		PayloadKeys: []crypto.PublicKey{testutil.Key(t, "a").Public()}, Signers: []crypto.Signer{testutil.Key(t, "b")}})
	if err != nil {
		t.Fatal(err)
	}
	stJSON, _ := st.Marshal()
	env, err := ReadEnvelope(bytes.NewReader(b.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	sum := sha256.Sum256(b.Bytes())
	section := fmt.Sprintf("The statement (the envelope's payload, decoded):\n\n```json\n%s\n```\n\nThe envelope (`RELEASE.dsse.json`):\n\n```json\n%s\n```\n\n"+
		"The bundle: members `RELEASE.dsse.json` (%d bytes) and `flatcar_production_update.gz` (%d bytes); %d bytes in all, SHA-256 `%x`.\n",
		stJSON, envJSON, len(envJSON), p.Len(), b.Len(), sum)
	doc, err := os.ReadFile("../doc/bundle-format.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- worked-example:begin -->\n", "<!-- worked-example:end -->\n"
	head, rest, ok1 := strings.Cut(string(doc), begin)
	_, tail, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatal("markers not found")
	}
	want := head + begin + section + end + tail
	if *updateDoc {
		os.WriteFile("../doc/bundle-format.md", []byte(want), 0o644)
		return
	}
	if want != string(doc) {
		t.Fatal("doc/bundle-format.md's worked example differs from what augen builds (go test ./bundle -run WorkedExample -update-doc)")
	}
}
