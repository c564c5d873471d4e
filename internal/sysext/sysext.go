// Package sysext checks a Flatcar sysext image (flatcar-*.raw, oem-*.raw)
// against the /usr it will extend, the way the machine will judge it:
//
//   - the image is a Discoverable Disk Image as systemd-repart
//     --make-ddi=sysext writes it: a GPT with one root (or usr) partition
//     for the machine's architecture, its dm-verity hash partition and its
//     verity signature partition (the Discoverable Partitions
//     Specification's type GUIDs, as systemd-dissect reads them);
//   - the hash tree is recomputed from the data partition and must be the
//     one stored, and its root hash the one the signature partition's JSON
//     names (rootHash);
//   - that JSON's PKCS#7 signature over the root hash (in hex) must verify
//     with a certificate of the release's own /usr, /usr/lib/verity.d/*.crt
//     (Flatcar's per-build sysext key: a sysext of another build is signed
//     by a key this /usr does not know), and certificateFingerprint must be
//     that certificate's;
//   - only then is the file system read (EROFS, as repart makes it; ext4
//     and btrfs too): the extension-release file named after the image
//     must match the /usr's os-release by systemd-sysext's rules
//     (extension_release_validate: ID or ID_LIKE, SYSEXT_LEVEL or
//     VERSION_ID, ARCHITECTURE, SYSEXT_SCOPE), and the image may not carry
//     usr/lib/os-release.
//
// Where this is stricter than systemd it says so in doc/sysext.md.
package sysext

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/authenticode"
	"github.com/augen-project/augen/internal/btrfs"
	"github.com/augen-project/augen/internal/budget"
	"github.com/augen-project/augen/internal/erofs"
	"github.com/augen-project/augen/internal/ext4"
	"github.com/augen-project/augen/internal/gpt"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/internal/pkcs7"
	"github.com/augen-project/augen/internal/verity"
)

// ErrSysext wraps every reason an image is refused.
var ErrSysext = augen.Rejection("sysext: refused")

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSysext}, args...)...)
}

// Limits.
const (
	// MaxSignature bounds the verity signature partition's JSON.
	MaxSignature = 4 << 20
	// MaxRead bounds what reading a /usr or a sysext file system may read
	// in all (directories and a few small files).
	MaxRead = 64 << 20
	maxFile = 64 << 10
	maxDir  = 1024
)

// Type GUIDs of the Discoverable Partitions Specification.
type partType struct {
	arch string // systemd's architecture name
	kind string // "root" or "usr"
	role string // "data", "verity", "verity-sig"
}

var partTypes = map[string]partType{
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": {"x86-64", "root", "data"},
	"2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5": {"x86-64", "root", "verity"},
	"41092B05-9FC8-4523-994F-2DEF0408B176": {"x86-64", "root", "verity-sig"},
	"8484680C-9521-48C6-9C11-B0720656F69E": {"x86-64", "usr", "data"},
	"77FF5F63-E7B6-4633-ACF4-1565B864C0E6": {"x86-64", "usr", "verity"},
	"E7BB33FB-06CF-4E81-8273-E543B413E2E2": {"x86-64", "usr", "verity-sig"},
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": {"arm64", "root", "data"},
	"DF3300CE-D69F-4C92-978C-9BFB0F38D820": {"arm64", "root", "verity"},
	"6DB69DE6-29F4-4758-A7A5-962190F00CE3": {"arm64", "root", "verity-sig"},
	"B0E01050-EE5F-4390-949A-9101B17104E9": {"arm64", "usr", "data"},
	"6E11A4E7-FBCA-4DED-B9E9-E1A512BB664E": {"arm64", "usr", "verity"},
	"C23CE4FF-44BD-4B00-B2D4-B41B3419E02A": {"arm64", "usr", "verity-sig"},
}

// BoardArchitecture is systemd's architecture name for each board.
var BoardArchitecture = map[string]string{"amd64-usr": "x86-64", "arm64-usr": "arm64"}

// Host is what a sysext is checked against: the /usr it will extend.
type Host struct {
	// From /usr/lib/os-release.
	ID, IDLike, VersionID, SysextLevel string
	// Architecture is systemd's name of the machines' architecture.
	Architecture string
	// Certs are /usr/lib/verity.d/*.crt, CertFiles their names.
	Certs     []*x509.Certificate
	CertFiles []string
}

// ErrNoFilesystem means the /usr image has no file system augen reads.
var ErrNoFilesystem = errors.New("sysext: the /usr image holds no ext4 or btrfs file system")

// ReadHost reads what sysexts are checked against from a USR partition
// image (the /usr filesystem at its start): os-release and the sysext
// certificates. board names the machines' architecture.
func ReadHost(ctx context.Context, r io.ReaderAt, size int64, board string) (*Host, error) {
	h := &Host{Architecture: BoardArchitecture[board]}
	if h.Architecture == "" {
		return nil, fmt.Errorf("sysext: unknown board %q", board)
	}
	fs, err := openFS(budget.NewReaderAt(ctx, r, MaxRead), size, false)
	if err != nil {
		if errors.Is(err, errNoFS) {
			return nil, ErrNoFilesystem
		}
		return nil, fmt.Errorf("the /usr image: %w", err)
	}
	osr, err := fs.ReadFile("lib/os-release", maxFile)
	if err != nil {
		return nil, fmt.Errorf("the /usr image: reading /usr/lib/os-release: %w", err)
	}
	h.ID, h.IDLike = osrelease.Field(osr, "ID"), osrelease.Field(osr, "ID_LIKE")
	h.VersionID, h.SysextLevel = osrelease.Field(osr, "VERSION_ID"), osrelease.Field(osr, "SYSEXT_LEVEL")
	if h.ID == "" {
		return nil, fmt.Errorf("the /usr image's /usr/lib/os-release has no ID")
	}
	names, err := fs.ReadDir("lib/verity.d", maxDir)
	if err != nil && !errors.Is(err, fs.notExist) {
		return nil, fmt.Errorf("the /usr image: reading /usr/lib/verity.d: %w", err)
	}
	slices.Sort(names)
	for _, n := range names {
		if !strings.HasSuffix(n, ".crt") {
			continue
		}
		b, err := fs.ReadFile("lib/verity.d/"+n, maxFile)
		if err != nil {
			return nil, fmt.Errorf("the /usr image: reading /usr/lib/verity.d/%s: %w", n, err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the /usr image's /usr/lib/verity.d/%s is not a PEM certificate", n)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the /usr image's /usr/lib/verity.d/%s: %w", n, err)
		}
		h.Certs, h.CertFiles = append(h.Certs, c), append(h.CertFiles, "/usr/lib/verity.d/"+n)
	}
	return h, nil
}

// CertificateList names the host's certificates with their fingerprints.
func (h *Host) CertificateList() string {
	if len(h.Certs) == 0 {
		return "none (the /usr has no /usr/lib/verity.d/*.crt)"
	}
	var s []string
	for i, c := range h.Certs {
		s = append(s, fmt.Sprintf("%s (SHA-256 %s)", h.CertFiles[i], authenticode.Fingerprint(c)))
	}
	return strings.Join(s, ", ")
}

// Image is what Check found in a sysext image.
type Image struct {
	Name         string `json:"name"`
	Architecture string `json:"architecture"`
	Filesystem   string `json:"filesystem"`
	RootHash     string `json:"root_hash"`
	// Certificate is the SHA-256 fingerprint (hex) of the /usr
	// certificate that verified the root hash signature; Signer its
	// subject.
	Certificate string `json:"certificate"`
	Signer      string `json:"signer"`
	// ExtensionRelease is the path of the extension-release file read,
	// Version its VERSION_ID (or SYSEXT_LEVEL when it matched on that).
	ExtensionRelease string `json:"extension_release"`
	Version          string `json:"version"`
}

type filesystem struct {
	kind     string
	notExist error
	ReadFile func(p string, limit int64) ([]byte, error)
	ReadDir  func(p string, limit int) ([]string, error)
}

var errNoFS = errors.New("no file system")

func openFS(r io.ReaderAt, size int64, withErofs bool) (*filesystem, error) {
	switch {
	case withErofs && erofs.Probe(r):
		fs, err := erofs.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &filesystem{"erofs", erofs.ErrNotExist, fs.ReadFile, fs.ReadDir}, nil
	case ext4.Probe(r):
		fs, err := ext4.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &filesystem{"ext4", ext4.ErrNotExist, fs.ReadFile, fs.ReadDir}, nil
	case btrfs.Probe(r):
		fs, err := btrfs.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &filesystem{"btrfs", btrfs.ErrNotExist, fs.ReadFile, fs.ReadDir}, nil
	}
	return nil, errNoFS
}

// sigJSON is the verity signature partition's content.
type sigJSON struct {
	RootHash               *string `json:"rootHash"`
	CertificateFingerprint *string `json:"certificateFingerprint"`
	Signature              *string `json:"signature"`
}

// Check checks the sysext image r (size bytes) named name (its file
// name without .raw) against host. Every refusal wraps ErrSysext and
// says what differs.
func Check(ctx context.Context, r io.ReaderAt, size int64, name string, host *Host) (*Image, error) {
	t, err := gpt.Read(r, size, nil)
	if err != nil {
		return nil, refusef("not a disk image (systemd-repart --make-ddi=sysext writes a GPT disk image): %v", err)
	}
	parts := map[string]gpt.Partition{}
	var kind string
	for _, p := range t.Partitions {
		pt, ok := partTypes[p.Type.String()]
		if !ok {
			return nil, refusef("partition %d (%q) has type %s, which is not a root or usr partition of a sysext: %w", p.Index, p.Label, p.Type, augen.Stricter("sysext-partitions"))
		}
		if pt.arch != host.Architecture {
			return nil, refusef("partition %d (%q) is a %s partition for %s, but the machines are %s", p.Index, p.Label, pt.kind, pt.arch, host.Architecture)
		}
		if kind != "" && pt.kind != kind {
			return nil, refusef("the image has both root and usr partitions: %w", augen.Stricter("sysext-partitions"))
		}
		kind = pt.kind
		if _, dup := parts[pt.role]; dup {
			return nil, refusef("two %s-%s %s partitions", pt.kind, pt.arch, pt.role)
		}
		if p.Offset() > size || p.Size() > size-p.Offset() {
			return nil, refusef("partition %d (%q) ends past the image's end", p.Index, p.Label)
		}
		parts[pt.role] = p
	}
	for _, role := range []string{"data", "verity", "verity-sig"} {
		if _, ok := parts[role]; !ok {
			suffix := map[string]string{"data": "", "verity": "-verity", "verity-sig": "-verity-sig"}[role]
			return nil, refusef("no %s-%s%s partition: systemd-repart --make-ddi=sysext with a signing key writes the file system, its dm-verity hash tree and its signature", orDefault(kind, "root"), host.Architecture, suffix)
		}
	}
	img := &Image{Name: name, Architecture: host.Architecture}
	// 1. The hash tree, recomputed from the data.
	data, hashes := parts["data"], parts["verity"]
	sbBytes := make([]byte, 512)
	if _, err := r.ReadAt(sbBytes, hashes.Offset()); err != nil {
		return nil, refusef("reading the verity superblock: %v", err)
	}
	sb, err := verity.ParseSuperblock(sbBytes)
	if err != nil {
		return nil, refusef("the verity partition: %v", err)
	}
	if sb.DataBlocks > uint64(data.Size())/uint64(sb.DataBlockSize) {
		return nil, refusef("the verity superblock covers %d blocks, more than the %d-byte data partition", sb.DataBlocks, data.Size())
	}
	dataSize := int64(sb.DataBlocks) * int64(sb.DataBlockSize)
	dataR := io.NewSectionReader(r, data.Offset(), dataSize)
	root, tree, err := verity.Tree(readerAt{ctx, dataR}, sb)
	if err != nil {
		return nil, refusef("computing the hash tree: %v", err)
	}
	if int64(len(tree)) > hashes.Size()-int64(sb.HashBlockSize) {
		return nil, refusef("the hash tree takes %d bytes, more than the verity partition holds", len(tree))
	}
	stored := make([]byte, len(tree))
	if _, err := r.ReadAt(stored, hashes.Offset()+int64(sb.HashBlockSize)); err != nil {
		return nil, refusef("reading the hash tree: %v", err)
	}
	if !bytes.Equal(stored, tree) {
		return nil, refusef("the stored hash tree is not the one of the data partition: the kernel would fail reads of the sysext")
	}
	img.RootHash = hex.EncodeToString(root)
	// 2. The signature partition.
	sigPart := parts["verity-sig"]
	if sigPart.Size() > MaxSignature {
		return nil, refusef("the verity signature partition is %d bytes, more than %d", sigPart.Size(), MaxSignature)
	}
	raw := make([]byte, sigPart.Size())
	if _, err := r.ReadAt(raw, sigPart.Offset()); err != nil {
		return nil, refusef("reading the verity signature partition: %v", err)
	}
	text := raw
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		text = raw[:i]
		if len(bytes.Trim(raw[i:], "\x00")) > 0 {
			return nil, refusef("the verity signature partition has data after its JSON's end")
		}
	}
	var sj sigJSON
	if err := json.Unmarshal(text, &sj); err != nil {
		return nil, refusef("the verity signature partition is not JSON: %v", err)
	}
	if sj.RootHash == nil || sj.Signature == nil {
		return nil, refusef("the verity signature JSON lacks rootHash or signature")
	}
	if !strings.EqualFold(*sj.RootHash, img.RootHash) {
		return nil, refusef("the verity signature is for root hash %s, but the data partition's hash tree has root hash %s", *sj.RootHash, img.RootHash)
	}
	der, err := base64.StdEncoding.DecodeString(*sj.Signature)
	if err != nil {
		return nil, refusef("the verity signature is not base64: %v", err)
	}
	msg, err := pkcs7.Parse(der)
	if err != nil {
		return nil, refusef("the verity signature: %v", err)
	}
	var cert *x509.Certificate
	for _, c := range host.Certs {
		if msg.SignerMatches(c) {
			cert = c
		}
	}
	if cert == nil {
		signer := "an unknown certificate"
		if c := msg.SignerCertificate(); c != nil {
			signer = fmt.Sprintf("%s (SHA-256 %s)", c.Subject, authenticode.Fingerprint(c))
		} else if sj.CertificateFingerprint != nil {
			signer = "the certificate with SHA-256 " + *sj.CertificateFingerprint
		}
		return nil, refusef("its root hash is signed by %s, which this release's /usr does not trust: it trusts %s. A sysext of another build (Flatcar signs each build's sysexts with a key made for that build)", signer, host.CertificateList())
	}
	if err := msg.Verify(cert, []byte(*sj.RootHash)); err != nil {
		return nil, refusef("the root hash signature does not verify with %s: %v", cert.Subject, err)
	}
	img.Certificate, img.Signer = authenticode.Fingerprint(cert), cert.Subject.String()
	if sj.CertificateFingerprint != nil && !strings.EqualFold(*sj.CertificateFingerprint, img.Certificate) {
		return nil, refusef("certificateFingerprint %s is not the fingerprint of the certificate that signed, %s", *sj.CertificateFingerprint, img.Certificate)
	}
	// 3. Authenticated: the file system.
	fs, err := openFS(budget.NewReaderAt(ctx, dataR, MaxRead), dataSize, true)
	if errors.Is(err, errNoFS) {
		return nil, refusef("the data partition holds no EROFS, ext4 or btrfs file system")
	} else if err != nil {
		return nil, refusef("the data partition: %v", err)
	}
	img.Filesystem = fs.kind
	// A sysext's tree has usr/ at its top (a usr partition is /usr).
	prefix := "usr/"
	if kind == "usr" {
		prefix = ""
	}
	if _, err := fs.ReadFile(prefix+"lib/os-release", maxFile); !errors.Is(err, fs.notExist) {
		return nil, refusef("it carries /usr/lib/os-release, which systemd-sysext refuses (an extension may not replace the host's)")
	}
	relDir := prefix + "lib/extension-release.d"
	relPath := relDir + "/extension-release." + name
	rel, err := fs.ReadFile(relPath, maxFile)
	if errors.Is(err, fs.notExist) {
		have, _ := fs.ReadDir(relDir, maxDir)
		return nil, refusef("no /%s: systemd-sysext reads the extension-release file named after the image (it holds %s)", path.Clean("usr/"+strings.TrimPrefix(relPath, "usr/")), orDefault(strings.Join(have, ", "), "none"))
	} else if err != nil {
		return nil, refusef("reading /%s: %v", relPath, err)
	}
	img.ExtensionRelease = "/" + path.Clean("usr/"+strings.TrimPrefix(relPath, "usr/"))
	img.Version, err = validate(host, rel)
	if err != nil {
		return nil, refusef("%s: %v", img.ExtensionRelease, err)
	}
	return img, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// validate applies systemd-sysext's extension_release_validate to the
// extension-release file rel against the host, for the system scope.
func validate(h *Host, rel []byte) (string, error) {
	get := func(k string) string { return osrelease.Field(rel, k) }
	if scope := get("SYSEXT_SCOPE"); scope != "" && !slices.Contains(strings.Fields(scope), "system") {
		return "", fmt.Errorf("SYSEXT_SCOPE=%q does not include system: systemd-sysext would not merge it", scope)
	}
	if a := get("ARCHITECTURE"); a != "" && a != "_any" && a != h.Architecture {
		return "", fmt.Errorf("ARCHITECTURE=%s, but the machines are %s", a, h.Architecture)
	}
	id := get("ID")
	switch {
	case id == "":
		return "", fmt.Errorf("no ID: systemd-sysext merges no extension without one")
	case id == "_any":
		return "any", nil
	case id != h.ID && !slices.Contains(strings.Fields(h.IDLike), id):
		return "", fmt.Errorf("ID=%s, but the /usr is %s", id, h.ID)
	}
	if h.VersionID == "" && h.SysextLevel == "" {
		return "", nil
	}
	if level := get("SYSEXT_LEVEL"); h.SysextLevel != "" && level != "" {
		if level != h.SysextLevel {
			return "", fmt.Errorf("SYSEXT_LEVEL=%s, but the /usr's is %s", level, h.SysextLevel)
		}
		return level, nil
	}
	if h.VersionID != "" {
		v := get("VERSION_ID")
		if v == "" {
			return "", fmt.Errorf("no VERSION_ID (nor a SYSEXT_LEVEL the /usr declares): systemd-sysext would not merge it")
		}
		if v != h.VersionID {
			return "", fmt.Errorf("VERSION_ID=%s, but the /usr is VERSION_ID=%s: systemd-sysext would not merge it", v, h.VersionID)
		}
		return v, nil
	}
	return "", nil
}

// readerAt checks ctx on every read (the tree is read once, whole).
type readerAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (c readerAt) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.ReadAt(p, off)
}
