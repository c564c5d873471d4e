package generate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/augen-project/augen/payload"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the worked example in doc/payload-format.md")

const (
	docPath   = "../../doc/payload-format.md"
	beginMark = "<!-- worked-example:begin -->\n"
	endMark   = "<!-- worked-example:end -->\n"
)

// TestWorkedExample regenerates the worked example that ends
// doc/payload-format.md, byte for byte.
func TestWorkedExample(t *testing.T) {
	img := append(bytes.Repeat([]byte{0xff}, 4096), make([]byte, 4096)...)
	kernel := []byte("not a kernel\n")
	p := build(t, img, kernel, 0, key(t, "a"))
	section := describe(t, p, img, kernel)

	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok1 := strings.Cut(string(doc), beginMark)
	_, tail, ok2 := strings.Cut(rest, endMark)
	if !ok1 || !ok2 {
		t.Fatal("worked-example markers not found")
	}
	want := head + beginMark + section + endMark + tail
	if *updateDoc {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != string(doc) {
		t.Fatal("doc/payload-format.md's worked example differs from what augen builds (go test ./payload/generate -run WorkedExample -update-doc)")
	}
}

func describe(t *testing.T, p, img, kernel []byte) string {
	pr, err := payload.NewReader(bytes.NewReader(p), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.ReadAll(); err != nil {
		t.Fatal(err)
	}
	m := pr.Manifest()
	var b strings.Builder
	meta := pr.MetadataSize()
	data := meta + int64(pr.DataSize())
	fmt.Fprintf(&b, "Layout: header bytes 0–19, manifest 20–%d (M = %d), data %d–%d (D = %d), signatures %d–%d (S = %d); %d bytes in all.\n\n",
		meta-1, pr.ManifestSize(), meta, data-1, pr.DataSize(), data, len(p)-1, len(p)-int(data), len(p))
	b.WriteString("Manifest, field by field:\n\n")
	op := func(indent string, o *payload.Operation) {
		fmt.Fprintf(&b, "%s- %s", indent, o.GetType())
		if o.DataLength != nil {
			fmt.Fprintf(&b, " data_offset=%d data_length=%d", o.GetDataOffset(), o.GetDataLength())
		}
		for _, e := range o.DstExtents {
			s := fmt.Sprint(e.GetStartBlock())
			if e.GetStartBlock() == payload.SparseHole {
				s = "HOLE"
			}
			fmt.Fprintf(&b, " dst={%s,%d}", s, e.GetNumBlocks())
		}
		if o.DataSha256Hash != nil {
			fmt.Fprintf(&b, " data_sha256_hash=%x", o.GetDataSha256Hash())
		}
		b.WriteString("\n")
	}
	b.WriteString("- partition_operations (1):\n")
	for _, o := range m.PartitionOperations {
		op("  ", o)
	}
	b.WriteString("- noop_operations (2):\n")
	for _, o := range m.NoopOperations {
		op("  ", o)
	}
	fmt.Fprintf(&b, "- block_size (3) = %d\n- signatures_offset (4) = %d\n- signatures_size (5) = %d\n", m.GetBlockSize(), m.GetSignaturesOffset(), m.GetSignaturesSize())
	fmt.Fprintf(&b, "- new_partition_info (9) = {size %d, hash %x}\n", m.GetNewPartitionInfo().GetSize(), m.GetNewPartitionInfo().GetHash())
	for _, pc := range m.Procedures {
		fmt.Fprintf(&b, "- procedures (10): %s, new_info = {size %d, hash %x}, operations:\n", pc.GetType(), pc.GetNewInfo().GetSize(), pc.GetNewInfo().GetHash())
		for _, o := range pc.Operations {
			op("  ", o)
		}
	}
	h := pr.Hashes()
	imgSum, kernelSum := sha256.Sum256(img), sha256.Sum256(kernel)
	fmt.Fprintf(&b, "\nHashes:\n\n")
	fmt.Fprintf(&b, "- image SHA-256: `%x`\n- kernel SHA-256: `%x`\n", imgSum, kernelSum)
	fmt.Fprintf(&b, "- signed hash (SHA-256 of bytes 0–%d): `%x`\n", data-1, pr.SignedHash())
	fmt.Fprintf(&b, "- Omaha size: `%d`\n- Omaha sha256 (base64): `%s`\n- sha1 (base64): `%s`\n- sha256 (hex): `%s`\n", h.Size, h.OmahaSHA256(), h.OmahaSHA1(), h.HexSHA256())
	b.WriteString("\nThe whole payload:\n\n```\n")
	for off := 0; off < len(p); off += 16 {
		line := p[off:min(off+16, len(p))]
		fmt.Fprintf(&b, "%08x  %-47s\n", off, spaced(hex.EncodeToString(line)))
	}
	b.WriteString("```\n")
	return b.String()
}

func spaced(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.TrimRight(strings.Join(parts, " "), " ")
}
