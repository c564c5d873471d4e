package main

import (
	"crypto"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/augen-project/augen/internal/filekind"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/pubkey"
)

const payloadInspectUsage = `Usage: augen payload inspect PAYLOAD [--pubkey PUB.pem]... [--image USR.bin] [--json]

Reads a whole payload, checking every rule the client enforces (but not
applying it), and shows its header, manifest summary, operations by type,
procedures, signatures and the values an update service publishes. With
--pubkey, signatures are matched to keys by fingerprint. PAYLOAD may be "-".

With --image (the payload's new USR image, ext2/3/4 or btrfs), it also shows
what the payload does to each file: how many files are unchanged, moved,
diffed (BSDIFF) or replaced (REPLACE_BZ), the data each kind costs, and the
costliest files. A payload names no files; the image does.

Exit status 3 means the payload is invalid.

Example:
  augen payload inspect flatcar_production_update.gz --pubkey official-v2.pub.pem
  augen payload inspect delta.gz --image flatcar_production_update.bin
`

func payloadInspect(e *env, args []string) (err error) {
	fs := newFlags(e, "payload inspect", payloadInspectUsage)
	var pubPaths []string
	fs.StringArrayVar(&pubPaths, "pubkey", nil, "a public key `PEM` to match signatures against (repeatable)")
	image := fs.String("image", "", "the new USR `IMAGE` (plain or .bz2, or a production image, unpacked), to show what happens to each file")
	uf := sizeOnlyUnpackFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON (shape in doc/payload-format.md)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return withHint(usagef("expected one payload, got %d arguments", fs.NArg()), `run "augen payload inspect --help"`)
	}
	var img *os.File
	if *image != "" {
		usr, _, done, err := usrInput(e, uf, "--image", *image, "", os.TempDir())
		if err != nil {
			return err
		}
		defer done()
		if img, err = os.Open(usr); err != nil {
			return fmt.Errorf("--image: %w", err)
		}
		defer img.Close()
	}
	defer hintKind(&err, fs.Arg(0), filekind.Payload)
	pubs, err := loadPubkeys(pubPaths)
	if err != nil {
		return err
	}
	pr, closeIn, err := openReader(e, fs.Arg(0))
	if err != nil {
		return err
	}
	defer closeIn()
	if err := pr.ReadAll(); err != nil {
		return err
	}
	s, err := payload.Summarize(pr, pubs)
	if err != nil {
		return err
	}
	if img != nil {
		st, err := img.Stat()
		if err != nil {
			return err
		}
		if s.Files, err = payload.SummarizeFiles(pr.Manifest(), img, st.Size()); err != nil {
			return fmt.Errorf("--image %s: %w", *image, err)
		}
	}
	if *asJSON {
		return writeJSON(e.stdout, s)
	}
	printSummary(e.stdout, fs.Arg(0), s)
	return nil
}

func loadPubkeys(paths []string) ([]crypto.PublicKey, error) {
	var pubs []crypto.PublicKey
	for _, p := range paths {
		k, err := pubkey.Load(p)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, k)
	}
	return pubs, nil
}

// openReader opens a payload file ("-" for stdin) and checks its header
// and manifest.
func openReader(e *env, path string) (*payload.Reader, func(), error) {
	in, closeIn := io.Reader(e.stdin), func() {}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		in, closeIn = f, func() { f.Close() }
	}
	pr, err := payload.NewReader(in, nil)
	if err != nil {
		closeIn()
		return nil, nil, err
	}
	return pr, closeIn, nil
}

func printSummary(w io.Writer, name string, s *payload.Summary) {
	fmt.Fprintf(w, "%s: CrAU v%d %s payload\n", name, s.FormatVersion, s.Kind)
	fmt.Fprintf(w, "  manifest      %d bytes, block size %d\n", s.ManifestSize, s.BlockSize)
	fmt.Fprintf(w, "  data          %d bytes\n", s.DataSize)
	if s.OldPartition != nil {
		fmt.Fprintf(w, "  old partition %d bytes, sha256 %s\n", s.OldPartition.Size, s.OldPartition.SHA256)
	}
	fmt.Fprintf(w, "  new partition %d bytes, sha256 %s\n", s.NewPartition.Size, s.NewPartition.SHA256)
	printOps(w, "  ", s.Operations, s.NewPartition.Size)
	if s.Kind == "delta" {
		fmt.Fprintf(w, "  %-10s %5s      %8d blocks (%5.1f%% of the image), 0 data bytes\n", "unchanged", "", s.UnchangedBlocks,
			100*float64(s.UnchangedBlocks*payload.BlockSize)/float64(s.NewPartition.Size))
	}
	for _, p := range s.Procedures {
		fmt.Fprintf(w, "  procedure %s", p.Type)
		if p.NewInfo != nil {
			fmt.Fprintf(w, ": %d bytes, sha256 %s", p.NewInfo.Size, p.NewInfo.SHA256)
		}
		if p.OldInfo != nil {
			fmt.Fprintf(w, " (from %d bytes, sha256 %s)", p.OldInfo.Size, p.OldInfo.SHA256)
		}
		fmt.Fprintln(w)
		printOps(w, "    ", p.Operations, 0)
	}
	if f := s.Files; f != nil {
		fmt.Fprintf(w, "  files (%s)  %d\n", f.Filesystem, f.Files)
		for _, c := range []struct {
			name string
			c    payload.FileCount
		}{{"unchanged", f.Unchanged}, {"moved", f.Moved}, {"diffed", f.Diffed}, {"replaced", f.Replaced}} {
			fmt.Fprintf(w, "    %-10s %6d files, %8d blocks, %d data bytes\n", c.name, c.c.Files, c.c.Blocks, c.c.DataBytes)
		}
		if f.Compressed.Files > 0 {
			fmt.Fprintf(w, "    %-10s %6d files, %8d blocks, %d data bytes (diffed or replaced, held compressed)\n", "compressed", f.Compressed.Files, f.Compressed.Blocks, f.Compressed.DataBytes)
		}
		fmt.Fprintf(w, "    %-10s %6s        %8d blocks, %d data bytes (no file owns them)\n", "other", "", f.Other.Blocks, f.Other.DataBytes)
		for _, c := range f.Costliest {
			fmt.Fprintf(w, "    costliest  %-8s %8d bytes  %s\n", c.Kind, c.DataBytes, c.Path)
		}
	}
	fmt.Fprintf(w, "  noop operations %d\n", s.NoopOps)
	if len(s.Signatures) == 0 {
		fmt.Fprintf(w, "  signatures    none (unsigned)\n")
	}
	for i, sig := range s.Signatures {
		var notes []string
		if sig.CheckedByClient {
			notes = append(notes, "checked by update_engine")
		}
		if sig.KeyFingerprint != "" {
			notes = append(notes, "key "+sig.KeyFingerprint)
		}
		fmt.Fprintf(w, "  signature %d   version %d, %d bytes", i, sig.Version, sig.Size)
		if len(notes) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(notes, "; "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  signed hash   %s\n", s.SignedHash)
	fmt.Fprintf(w, "  omaha size    %d\n  sha256        %s\n  omaha sha256  %s (base64, as Omaha sends it)\n  omaha sha1    %s (base64)\n", s.Omaha.Size, s.Omaha.SHA256Hex, s.Omaha.SHA256Base64, s.Omaha.SHA1Base64)
}

func printOps(w io.Writer, indent string, ops []payload.OpStats, partSize uint64) {
	for _, o := range ops {
		fmt.Fprintf(w, "%s%-10s %5d ops, %8d blocks", indent, o.Type, o.Count, o.Blocks)
		if partSize > 0 {
			fmt.Fprintf(w, " (%5.1f%% of the image)", 100*float64(o.Blocks*payload.BlockSize)/float64(partSize))
		}
		fmt.Fprintf(w, ", %d data bytes\n", o.DataBytes)
	}
}
