package verify

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

// Old is the previous release a delta applies to.
type Old struct {
	Partition, Kernel string
}

// Options tune Bundle.
type Options struct {
	// Channel, if set, must be allowed for the keys that signed.
	Channel string
	// Old maps a delta's from-version to the images it applies to; deltas
	// without one are checked but not applied.
	Old map[string]Old
	// TempDir holds payloads while they are checked and the simulated
	// targets ("" = os.TempDir()).
	TempDir string
}

// Report is what Bundle found. Failures lists every failed check as
// "member: what".
type Report struct {
	Valid            bool              `json:"valid"`
	Version          string            `json:"version,omitempty"`
	Board            string            `json:"board,omitempty"`
	BundleSigners    []string          `json:"bundle_signers"`
	UntrustedSigners []string          `json:"untrusted_signers,omitempty"`
	Payloads         []PayloadReport   `json:"payloads"`
	Failures         []string          `json:"failures"`
	Statement        *bundle.Statement `json:"-"`
}

// PayloadReport describes one checked payload.
type PayloadReport struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	SignedBy string `json:"signed_by,omitempty"`
	// SignedHash and SignatureSizes let a verifier rebuild the payload
	// from its input and compare (augen verify --image).
	SignedHash     string          `json:"signed_hash"`
	SignatureSizes []int           `json:"signature_sizes"`
	Applied        bool            `json:"applied"`
	Rebuilt        []apply.Rebuilt `json:"rebuilt,omitempty"`
	// OSVersion is the version the rebuilt partition declares
	// (/usr/lib/os-release), which must be the statement's; VersionNote
	// says why it could not be read when the partition holds no
	// filesystem augen reads.
	OSVersion   string `json:"os_version,omitempty"`
	VersionNote string `json:"version_note,omitempty"`
}

func (r *Report) fail(member, format string, args ...any) {
	r.Failures = append(r.Failures, member+": "+fmt.Sprintf(format, args...))
}

// Bundle verifies a release bundle against the policy: the envelope's
// signatures (a threshold of distinct trusted keys), the statement, every
// member's size and digests, and every payload (the reader's rules, the
// signature in the version-2 slot by a trusted payload key, a simulated
// apply that must rebuild what the statement and the manifest promise).
// Nothing is trusted before the envelope verified. The error wraps
// ErrVerification and names every failed check.
func Bundle(r io.Reader, trust *Trust, opts Options) (*Report, error) {
	rep := &Report{BundleSigners: []string{}, Payloads: []PayloadReport{}, Failures: []string{}}
	var st *bundle.Statement
	seen := map[string]bool{}
	err := bundle.ReadTar(r, func(name string, size int64, body io.Reader) error {
		if name == bundle.EnvelopeName {
			st = checkEnvelope(rep, trust, opts, body)
			return nil
		}
		if st == nil {
			return nil // nothing to check against; already reported
		}
		seen[name] = true
		checkMember(rep, st, trust, opts, name, size, body)
		return nil
	})
	if err != nil {
		rep.fail("bundle", "%v", err)
	}
	if st != nil {
		for _, sub := range st.Subject {
			if !seen[sub.Name] {
				rep.fail(sub.Name, "listed in the statement but missing from the bundle")
			}
		}
	}
	rep.Statement = st
	rep.Valid = len(rep.Failures) == 0
	if !rep.Valid {
		return rep, fmt.Errorf("%w: %s", ErrVerification, strings.Join(rep.Failures, "; "))
	}
	return rep, nil
}

func checkEnvelope(rep *Report, trust *Trust, opts Options, body io.Reader) *bundle.Statement {
	const member = bundle.EnvelopeName
	b, err := io.ReadAll(io.LimitReader(body, bundle.MaxEnvelopeSize+1))
	if err != nil {
		rep.fail(member, "%v", err)
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var env bundle.Envelope
	if err := dec.Decode(&env); err != nil {
		rep.fail(member, "not a DSSE envelope: %v", err)
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		rep.fail(member, "data after the envelope")
		return nil
	}
	if env.PayloadType != bundle.PayloadTypeInToto {
		rep.fail(member, "payload type %q, want %q", env.PayloadType, bundle.PayloadTypeInToto)
		return nil
	}
	valid, untrusted, err := env.Verify(trust.BundleKeys())
	rep.UntrustedSigners = untrusted
	if err != nil {
		rep.fail(member, "signatures: %v", err)
		return nil
	}
	rep.BundleSigners = valid
	if len(valid) < trust.Threshold {
		rep.fail(member, "signed by %d trusted bundle key(s), the policy needs %d", len(valid), trust.Threshold)
		return nil
	}
	body2, err := env.DecodedPayload()
	if err != nil {
		rep.fail(member, "payload: %v", err)
		return nil
	}
	st, err := bundle.ParseStatement(body2)
	if err != nil {
		rep.fail(member, "statement: %v", err)
		return nil
	}
	rep.Version, rep.Board = st.Predicate.Version, st.Predicate.Board
	if !trust.BoardAllowed(st.Predicate.Board) {
		rep.fail(member, "statement: board %s is not allowed by the policy", st.Predicate.Board)
	}
	if opts.Channel != "" {
		if err := trust.ChannelAllowed(opts.Channel, valid); err != nil {
			rep.fail(member, "%v", err)
		}
	}
	return st
}

func checkMember(rep *Report, st *bundle.Statement, trust *Trust, opts Options, name string, size int64, body io.Reader) {
	var sub *bundle.Subject
	for i := range st.Subject {
		if st.Subject[i].Name == name {
			sub = &st.Subject[i]
		}
	}
	var entry *bundle.PayloadEntry
	for i := range st.Predicate.Payloads {
		if st.Predicate.Payloads[i].Name == name {
			entry = &st.Predicate.Payloads[i]
		}
	}
	if sub == nil || entry == nil {
		rep.fail(name, "not listed in the release statement")
		return
	}
	// The payload streams from the bundle straight into the strict
	// reader, which also computes the whole file's digests.
	pr := PayloadReport{Name: name, Kind: entry.Kind}
	defer func() { rep.Payloads = append(rep.Payloads, pr) }()
	prd, err := payload.NewReader(body, nil)
	if err != nil {
		rep.fail(name, "payload: %v", err)
		return
	}
	var rebuilt []apply.Rebuilt
	old, haveOld := opts.Old[entry.FromVersion]
	if entry.Kind == bundle.KindDelta && !haveOld {
		err = prd.ReadAll()
	} else {
		src := apply.Sources{Partition: old.Partition, Kernel: old.Kernel, TempDir: opts.TempDir}
		if entry.Kind != bundle.KindExtra {
			src.InspectPartition = func(r io.ReaderAt, size int64) {
				checkVersion(rep, &pr, name, st.Predicate.Version, r, size)
			}
		}
		rebuilt, err = apply.Simulate(prd, src)
		pr.Applied = err == nil
	}
	if err != nil {
		rep.fail(name, "payload: %v", err)
		return
	}
	h := prd.Hashes()
	pr.Size, pr.SHA256 = h.Size, h.HexSHA256()
	if h.Size != entry.Size || h.HexSHA256() != sub.Digest["sha256"] || hex.EncodeToString(h.SHA1[:]) != sub.Digest["sha1"] {
		rep.fail(name, "digest: %d bytes, sha256 %s; the statement says %d bytes, sha256 %s", h.Size, h.HexSHA256(), entry.Size, sub.Digest["sha256"])
		return
	}
	pr.Rebuilt = rebuilt
	pubs := make([]crypto.PublicKey, 0, len(trust.PayloadKeys()))
	for _, k := range trust.PayloadKeys() {
		pubs = append(pubs, k)
	}
	sum, err := payload.Summarize(prd, pubs)
	if err != nil {
		rep.fail(name, "payload: %v", err)
		return
	}
	pr.SignedHash = sum.SignedHash
	for _, s := range sum.Signatures {
		pr.SignatureSizes = append(pr.SignatureSizes, s.Size)
	}
	client := false
	for _, s := range sum.Signatures {
		if s.CheckedByClient {
			client = true
			if s.KeyFingerprint == "" {
				rep.fail(name, "payload signature: the version-2 signature (the one update_engine checks) is not by a trusted payload key")
			}
			pr.SignedBy = s.KeyFingerprint
		}
	}
	if !client {
		rep.fail(name, "payload signature: no version-2 signature")
	}
	if entry.NewPartition != nil && (sum.NewPartition == nil || sum.NewPartition.SHA256 != entry.NewPartition.SHA256 || int64(sum.NewPartition.Size) != entry.NewPartition.Size) {
		rep.fail(name, "statement: new partition differs from the payload's manifest")
	}
	if entry.Kernel != nil {
		ok := false
		for _, p := range sum.Procedures {
			if p.Type == "KERNEL" && p.NewInfo != nil && p.NewInfo.SHA256 == entry.Kernel.SHA256 && int64(p.NewInfo.Size) == entry.Kernel.Size {
				ok = true
			}
		}
		if !ok {
			rep.fail(name, "statement: kernel differs from the payload's manifest")
		}
	}
	if (entry.Kind == bundle.KindDelta) != (sum.Kind == "delta") {
		rep.fail(name, "statement: kind %s, but the payload is a %s payload", entry.Kind, sum.Kind)
	}
}

// checkVersion ties the statement's version to the one the rebuilt /usr
// declares, so that a release cannot carry another build under its name.
// A partition that declares no version (no filesystem augen reads, or no
// os-release in it: test payloads, not a Flatcar /usr) is noted in the
// report, not failed; a filesystem that cannot be read fails.
func checkVersion(rep *Report, pr *PayloadReport, name, want string, r io.ReaderAt, size int64) {
	got, from, err := osrelease.Version(r, size)
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem):
		pr.VersionNote = "release version not checked: the new partition holds no ext2/3/4 or btrfs filesystem"
	case errors.Is(err, osrelease.ErrNoVersion):
		pr.VersionNote = "release version not checked: the new partition has no /usr/lib/os-release VERSION"
	case err != nil:
		rep.fail(name, "release version: reading the new partition: %v", err)
	case got != want:
		pr.OSVersion = got
		rep.fail(name, "release version: the statement says %s, but the new partition's %s says %s", want, from, got)
	default:
		pr.OSVersion = got
	}
}
