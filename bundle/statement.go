package bundle

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/strictjson"
)

// The release statement is an in-toto Statement v1 whose subjects are the
// bundle's payload files and whose predicate describes the release.
const (
	StatementType        = "https://in-toto.io/Statement/v1"
	PredicateTypeRelease = "https://github.com/augen-project/augen/release/v1"
	// FlatcarAppID is the Omaha app id of Flatcar Container Linux.
	FlatcarAppID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"
	// MaxStatementSize bounds a statement before it is parsed.
	MaxStatementSize = 1 << 20
)

// Payload kinds.
const (
	KindFull  = "full"
	KindDelta = "delta"
	KindExtra = "extra"
)

// Statement is the in-toto statement.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Release   `json:"predicate"`
}

// Subject names a file of the bundle and its digests (hex).
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Release is the predicate.
type Release struct {
	AppID       string         `json:"app_id"`
	Version     string         `json:"version"`
	Board       string         `json:"board"`
	Payloads    []PayloadEntry `json:"payloads"`
	InputImage  *Digests       `json:"input_image,omitempty"`
	PayloadKeys []string       `json:"payload_keys"`
	Augen       string         `json:"augen_version"`
	// RequiresVersion is the oldest version that may update to this
	// release directly (release --requires-version): older machines must
	// first install a floor at or above it (say, the release that taught
	// update_engine a new filesystem). Push refuses a channel whose floors
	// would let an older machine be offered this release directly.
	RequiresVersion string `json:"requires_version,omitempty"`
	// SecureBoot is the Authenticode signature of the release's kernel
	// as it was checked when the release was built (nil: the kernel was
	// not signed for Secure Boot). verify checks the rebuilt kernel's.
	SecureBoot *SecureBoot `json:"secure_boot,omitempty"`
}

// SecureBoot names the certificate that signed the kernel for Secure Boot.
type SecureBoot struct {
	// Subject and Fingerprint (SHA-256 of its DER, hex) of the signer.
	Subject     string `json:"subject"`
	Fingerprint string `json:"fingerprint"`
	// TrustedBy is the fingerprint of the --secure-boot-cert it chained
	// to ("" when none was given).
	TrustedBy string `json:"trusted_by,omitempty"`
}

// Sysext is what was checked of an extra payload's sysext image (a
// Discoverable Disk Image) against the release's /usr.
type Sysext struct {
	// RootHash is the image's dm-verity root hash (hex); Certificate the
	// SHA-256 fingerprint of the /usr/lib/verity.d certificate that
	// verified its signature.
	RootHash    string `json:"root_hash"`
	Certificate string `json:"certificate"`
	// ExtensionRelease is the extension-release file read, Version its
	// VERSION_ID (or SYSEXT_LEVEL) that matched the /usr's.
	ExtensionRelease string `json:"extension_release"`
	Version          string `json:"version"`
}

// PayloadEntry describes one payload file with the values an update
// service publishes.
type PayloadEntry struct {
	Name         string   `json:"name"`
	Kind         string   `json:"kind"`
	FromVersion  string   `json:"from_version,omitempty"`
	Size         int64    `json:"size"`
	SHA1Base64   string   `json:"sha1_base64"`
	SHA256Base64 string   `json:"sha256_base64"`
	SHA256Hex    string   `json:"sha256_hex"`
	NewPartition *Digests `json:"new_partition,omitempty"`
	Kernel       *Digests `json:"kernel,omitempty"`
	// OldPartition and OldKernel (deltas) are the /usr and kernel the
	// delta applies to, from its manifest: verify --old checks the images
	// it is given against them.
	OldPartition *Digests `json:"old_partition,omitempty"`
	OldKernel    *Digests `json:"old_kernel,omitempty"`
	// PartitionSize (deltas) is the size of the USR partition on the
	// machines the delta is for: the client hashes that whole partition,
	// the old image followed by zeros, so a delta applies on one size only
	// (Flatcar's 1 GiB and 2 GiB partitions). verify --old applies it on a
	// partition of this size. Bundles from before the field leave it out;
	// it is then old_partition.size.
	PartitionSize int64 `json:"partition_size,omitempty"`
	// Installer names whose rules the payload is verified by: machines
	// apply full and delta payloads with update_engine and install extras
	// (systemd-sysext images) with ue-rs. Bundles from before the field
	// leave it out; it is then the kind's.
	Installer string `json:"installer,omitempty"`
	// Sysext (extras) is what was checked of the sysext image the extra
	// installs; nil for an extra that is not a sysext disk image, or one
	// bundled without the /usr to check it against.
	Sysext *Sysext `json:"sysext,omitempty"`
}

// Installers.
const (
	InstallerUpdateEngine = "update_engine"
	InstallerUeRs         = "ue-rs"
)

// InstallerFor is the program that installs payloads of a kind.
func InstallerFor(kind string) string {
	if kind == KindExtra {
		return InstallerUeRs
	}
	return InstallerUpdateEngine
}

// Digests are a file's size and SHA-256 (hex).
type Digests struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ErrStatement wraps every reason a statement is refused.
var ErrStatement = augen.Rejection("bundle: invalid release statement")

func badStatement(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStatement, fmt.Sprintf(format, args...))
}

var (
	semver   = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	fileName = regexp.MustCompile(`^(flatcar_production_update\.gz|delta-from-[0-9A-Za-z.+-]+\.gz|(oem|flatcar)-[0-9A-Za-z_.-]+\.gz)$`)
	hexRE    = regexp.MustCompile(`^[0-9a-f]+$`)
	// Boards maps each board to its Nebraska arch number.
	Boards = map[string]int{"amd64-usr": 1, "arm64-usr": 2}
)

// Marshal encodes the statement (fields in a fixed order, digest maps
// sorted by encoding/json), so the same release has the same bytes.
func (s *Statement) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseStatement reads a statement strictly: bounded, no unknown fields,
// nothing after it, and every rule of Check.
func ParseStatement(b []byte) (*Statement, error) {
	if len(b) > MaxStatementSize {
		return nil, badStatement("%d bytes, more than %d", len(b), MaxStatementSize)
	}
	var s Statement
	if err := strictjson.Decode(b, &s); err != nil {
		return nil, badStatement("%v", err)
	}
	return &s, s.Check()
}

// Check enforces the statement's own consistency: types, version, board,
// file names, and that every payload is a subject with the same digests in
// both encodings.
func (s *Statement) Check() error {
	if s.Type != StatementType || s.PredicateType != PredicateTypeRelease {
		return badStatement("type %q / predicate type %q", s.Type, s.PredicateType)
	}
	r := s.Predicate
	if r.AppID == "" {
		return badStatement("no app id")
	}
	if !semver.MatchString(r.Version) {
		return badStatement("version %q is not MAJOR.MINOR.PATCH", r.Version)
	}
	if _, ok := Boards[r.Board]; !ok {
		return badStatement("unknown board %q (amd64-usr or arm64-usr)", r.Board)
	}
	if sb := r.SecureBoot; sb != nil && (len(sb.Fingerprint) != 64 || !hexRE.MatchString(sb.Fingerprint) || sb.TrustedBy != "" && (len(sb.TrustedBy) != 64 || !hexRE.MatchString(sb.TrustedBy))) {
		return badStatement("secure_boot fingerprint %q / trusted_by %q", sb.Fingerprint, sb.TrustedBy)
	}
	if r.RequiresVersion != "" {
		if c, ok := CompareVersions(r.RequiresVersion, r.Version); !ok || c >= 0 {
			return badStatement("requires_version %q is not a MAJOR.MINOR.PATCH version older than the release's %s", r.RequiresVersion, r.Version)
		}
	}
	subjects := map[string]Subject{}
	for _, sub := range s.Subject {
		if !fileName.MatchString(sub.Name) {
			return badStatement("subject %q is not a payload file name", sub.Name)
		}
		if _, dup := subjects[sub.Name]; dup {
			return badStatement("subject %s listed twice", sub.Name)
		}
		for alg, d := range sub.Digest {
			want := map[string]int{"sha256": 64, "sha1": 40}[alg]
			if want == 0 || len(d) != want || !hexRE.MatchString(d) {
				return badStatement("subject %s: digest %s %q", sub.Name, alg, d)
			}
		}
		if sub.Digest["sha256"] == "" || sub.Digest["sha1"] == "" {
			return badStatement("subject %s needs sha256 and sha1", sub.Name)
		}
		subjects[sub.Name] = sub
	}
	if len(r.Payloads) != len(subjects) {
		return badStatement("%d payloads but %d subjects", len(r.Payloads), len(subjects))
	}
	full := 0
	for _, p := range r.Payloads {
		sub, ok := subjects[p.Name]
		if !ok {
			return badStatement("payload %s is not a subject", p.Name)
		}
		sha256b, err1 := base64.StdEncoding.DecodeString(p.SHA256Base64)
		sha1b, err2 := base64.StdEncoding.DecodeString(p.SHA1Base64)
		if err1 != nil || err2 != nil || hex.EncodeToString(sha256b) != sub.Digest["sha256"] || p.SHA256Hex != sub.Digest["sha256"] ||
			hex.EncodeToString(sha1b) != sub.Digest["sha1"] {
			return badStatement("payload %s: its Omaha hashes differ from its subject digests", p.Name)
		}
		if p.Size <= 0 {
			return badStatement("payload %s: size %d", p.Name, p.Size)
		}
		if p.Installer != "" && p.Installer != InstallerFor(p.Kind) {
			return badStatement("payload %s: a %s payload is installed by %s, not %q", p.Name, p.Kind, InstallerFor(p.Kind), p.Installer)
		}
		switch p.Kind {
		case KindFull:
			full++
			if p.Name != "flatcar_production_update.gz" || p.NewPartition == nil {
				return badStatement("the full payload must be flatcar_production_update.gz with its partition hashes")
			}
		case KindDelta:
			if !semver.MatchString(p.FromVersion) || (p.Name != "delta-from-"+p.FromVersion+".gz" && p.Name != DeltaName(p.FromVersion, p.PartitionSize)) || p.NewPartition == nil {
				return badStatement("delta %s: from version %q", p.Name, p.FromVersion)
			}
			if p.PartitionSize < 0 || p.PartitionSize > 0 && (p.OldPartition == nil || p.OldPartition.Size != p.PartitionSize) {
				return badStatement("delta %s: partition_size %d is not the size its old partition is described over", p.Name, p.PartitionSize)
			}
		case KindExtra:
			if p.FromVersion != "" {
				return badStatement("extra payload %s has a from version", p.Name)
			}
			if x := p.Sysext; x != nil && (len(x.RootHash) != 64 || !hexRE.MatchString(x.RootHash) || len(x.Certificate) != 64 || !hexRE.MatchString(x.Certificate)) {
				return badStatement("extra payload %s: sysext root hash %q / certificate %q", p.Name, x.RootHash, x.Certificate)
			}
		default:
			return badStatement("payload %s: unknown kind %q", p.Name, p.Kind)
		}
		if p.Sysext != nil && p.Kind != KindExtra {
			return badStatement("payload %s: a %s payload is not a sysext", p.Name, p.Kind)
		}
	}
	if full != 1 {
		return badStatement("%d full payloads; a release has exactly one", full)
	}
	return nil
}

// DeltaName is the bundle name of a delta from version from built for USR
// partitions of partitionSize bytes, when a release has deltas for more
// than one size: delta-from-VERSION-for-2GiB.gz. A release with one size
// names its delta delta-from-VERSION.gz.
func DeltaName(from string, partitionSize int64) string {
	return "delta-from-" + from + "-for-" + SizeLabel(partitionSize) + ".gz"
}

// SizeLabel writes a size as 2GiB or 6MiB when it is whole, else in bytes.
func SizeLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n, 10)
}
