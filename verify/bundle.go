package verify

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/authenticode"
	"github.com/augen-project/augen/internal/ctxio"
	"github.com/augen-project/augen/internal/osrelease"
	"github.com/augen-project/augen/internal/sysext"
	"github.com/augen-project/augen/internal/verity"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

// Old is the previous release a delta applies to.
type Old struct {
	Partition, Kernel string
	// PartitionName and KernelName, if set, name them in errors (the
	// user's production image they were unpacked from).
	PartitionName, KernelName string
}

// Options tune Bundle.
type Options struct {
	// Channel, if set, must be allowed for the keys that signed.
	Channel string
	// Old maps a delta's from-version to the images it applies to.
	Old map[string]Old
	// AllowUnappliedDeltas accepts a delta with no entry in Old after
	// checking its format and signatures only. Otherwise such a delta
	// fails: a delta nobody applied may be one that bricks.
	AllowUnappliedDeltas bool
	// TempDir holds payloads while they are checked and the simulated
	// targets ("" = os.TempDir()).
	TempDir string
	// Progress, if set, is told how far each member's apply is (stages
	// "applying NAME", "hashing NAME").
	Progress augen.Progress
}

// Report is what Bundle found; Failures lists every failed check.
type Report struct {
	Valid            bool     `json:"valid"`
	Version          string   `json:"version,omitempty"`
	Board            string   `json:"board,omitempty"`
	BundleSigners    []string `json:"bundle_signers"`
	UntrustedSigners []string `json:"untrusted_signers,omitempty"`

	formatErr error
	Payloads  []PayloadReport `json:"payloads"`
	Failures  []Failure       `json:"failures"`
	// BuiltFrom is the result of the --image check, when it ran.
	BuiltFrom *BuiltFromReport  `json:"built_from,omitempty"`
	Statement *bundle.Statement `json:"-"`
}

// BuiltFromReport is what BuiltFrom found: the CI image, the signed hash
// of the full payload rebuilt from it, and whether it is the bundle's.
type BuiltFromReport struct {
	Image      string `json:"image"`
	SignedHash string `json:"signed_hash,omitempty"`
	Match      bool   `json:"match"`
	Error      string `json:"error,omitempty"`
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
	SignedHash     string `json:"signed_hash"`
	SignatureSizes []int  `json:"signature_sizes"`
	Applied        bool   `json:"applied"`
	// PartitionSize (deltas) is the USR partition the delta is for (and
	// was applied on): the statement's partition_size, or its manifest's
	// old_partition_info.size.
	PartitionSize int64           `json:"partition_size,omitempty"`
	Rebuilt       []apply.Rebuilt `json:"rebuilt,omitempty"`
	// OSVersion is the version the rebuilt partition declares
	// (/usr/lib/os-release), which must be the statement's; VersionNote
	// says why it could not be read when the partition holds no
	// filesystem augen reads.
	OSVersion   string `json:"os_version,omitempty"`
	VersionNote string `json:"version_note,omitempty"`
	// KernelArch is the rebuilt kernel's architecture, which must be the
	// statement's board's; VerityRootHash the rebuilt /usr's dm-verity
	// root hash, which the kernel must carry. KernelNote says why neither
	// was checked (a kernel that is no x86 or arm64 image).
	KernelArch     string `json:"kernel_arch,omitempty"`
	VerityRootHash string `json:"verity_root_hash,omitempty"`
	KernelNote     string `json:"kernel_note,omitempty"`
	// SecureBoot is the rebuilt kernel's verified Authenticode signature
	// (nil: unsigned, SecureBootNote says so).
	SecureBoot     *bundle.SecureBoot `json:"secure_boot,omitempty"`
	SecureBootNote string             `json:"secure_boot_note,omitempty"`
	// Sysext (extras) is what the rebuilt sysext image was checked to be,
	// against the /usr the full payload rebuilds; SysextNote says why an
	// extra was not checked as one (it is no disk image).
	Sysext     *bundle.Sysext `json:"sysext,omitempty"`
	SysextNote string         `json:"sysext_note,omitempty"`
}

// releaseState is what one member's check leaves for others: the /usr the
// full payload rebuilds, which sysexts are checked against.
type releaseState struct {
	host    *sysext.Host
	hostErr error
}

// Failure is one failed check: the member it concerns ("bundle" for the
// archive itself, the envelope, or a payload), what was checked (format,
// members, digest, envelope, signatures, statement, channel, payload,
// payload signature, delta, release version, built from) and what was
// wrong.
type Failure struct {
	Member string `json:"member"`
	Check  string `json:"check"`
	Error  string `json:"error"`
	// Hint, if set, says what to do next.
	Hint string `json:"hint,omitempty"`
	// Err is the error the check failed with, when there was one (a
	// payload rule, a sysext refusal, a signature): errors.Is and
	// errors.As reach it through a FailedError.
	Err error `json:"-"`
}

// FailedError is what Bundle returns when checks failed: every failure,
// in the order found. Its text is "verify: verification failed: " and the
// failures joined; errors.Is(err, ErrVerification) holds, and so does
// errors.Is or errors.As for each failure's own error (apply.ErrMismatch,
// a rule augen is stricter by, sysext.ErrSysext…).
type FailedError struct {
	Failures []Failure
}

func (e *FailedError) Error() string {
	s := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		s[i] = f.String()
	}
	return ErrVerification.Error() + ": " + strings.Join(s, "; ")
}

// Unwrap gives ErrVerification and each failure's own error.
func (e *FailedError) Unwrap() []error {
	errs := []error{ErrVerification}
	for _, f := range e.Failures {
		if f.Err != nil {
			errs = append(errs, f.Err)
		}
	}
	return errs
}

// Failed says whether a check of this name (Failure.Check: "payload",
// "secure boot", "sysext", "signatures"…) failed.
func (e *FailedError) Failed(check string) bool {
	for _, f := range e.Failures {
		if f.Check == check {
			return true
		}
	}
	return false
}

// String is "member: check: error", the line augen verify prints.
func (f Failure) String() string { return f.Member + ": " + f.Check + ": " + f.Error }

func (r *Report) fail(member, check, format string, args ...any) {
	r.failHint(member, check, "", format, args...)
}

func (r *Report) failHint(member, check, hint, format string, args ...any) {
	f := Failure{Member: member, Check: check, Error: fmt.Sprintf(format, args...), Hint: hint}
	for _, a := range args {
		if err, ok := a.(error); ok && f.Err == nil {
			f.Err = err
		}
	}
	r.Failures = append(r.Failures, f)
}

// signHint is what to do when a bundle has too few signatures.
const signHint = `another officer adds a signature with "augen bundle sign BUNDLE --key URI --policy POLICY -o SIGNED"`

func untrustedNote(untrusted []string) string {
	if len(untrusted) == 0 {
		return ""
	}
	return fmt.Sprintf("; also signed by %d key(s) the policy does not trust (%s)", len(untrusted), strings.Join(untrusted, ", "))
}

// FormatError is the error that stopped the bundle's tar from being read
// (nil when it was read): what the file holds may say why.
func (r *Report) FormatError() error { return r.formatErr }

// Member is where a verified member lies in the bundle and what its bytes
// hash to (the statement's digests, which the bytes were seen to match).
type Member struct {
	Name         string
	Offset, Size int64
	SHA256       [sha256.Size]byte
	SHA1         [sha1.Size]byte
}

// Verified is a bundle that passed Bundle: its statement, the channel the
// policy was checked for, and where each member's verified bytes lie. Only
// Bundle makes one, so code that takes a *Verified (push) cannot be handed
// a bundle that was not verified, and never re-reads the bundle by path.
type Verified struct {
	report  *Report
	channel string
	members map[string]Member
	src     io.ReaderAt
}

// Report is what the verification found (Valid is true).
func (v *Verified) Report() *Report { return v.report }

// Statement is the verified release statement.
func (v *Verified) Statement() *bundle.Statement { return v.report.Statement }

// Channel is the channel the policy was checked for ("" if none).
func (v *Verified) Channel() string { return v.channel }

// Member returns a verified member by name.
func (v *Verified) Member(name string) (Member, bool) {
	m, ok := v.members[name]
	return m, ok
}

// Open returns a reader of a member's bytes that checks them again as they
// are read: at the end it returns an error wrapping ErrVerification
// instead of io.EOF if they are not the bytes that were verified (the file
// changed since). Each call reads from the start.
func (v *Verified) Open(name string) (io.Reader, error) {
	m, ok := v.members[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a verified member of the bundle", ErrVerification, name)
	}
	return &checkedReader{r: io.NewSectionReader(v.src, m.Offset, m.Size), m: m, h: sha256.New()}, nil
}

type checkedReader struct {
	r io.Reader
	m Member
	h hash.Hash
	n int64
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF && (c.n != c.m.Size || !bytes.Equal(c.h.Sum(nil), c.m.SHA256[:])) {
		return n, fmt.Errorf("%w: %s changed since it was verified", ErrVerification, c.m.Name)
	}
	return n, err
}

// Bundle verifies the release bundle held in src (size bytes) against the
// policy, in an order that lets no unauthenticated byte reach a parser
// heavier than the bundle's strict tar reader:
//
//  1. one pass over the tar: its structure, the envelope's bytes, and the
//     size, SHA-256 and SHA-1 of every other member (hashing parses
//     nothing);
//  2. the envelope: DSSE type, signatures by a threshold of distinct
//     trusted keys, then the statement (strict JSON) and the policy's
//     board and channel rules;
//  3. every member's size and digests against the signed statement;
//  4. only then, each member that matched is read again and parsed: the
//     payload reader's rules, a simulated apply (for deltas given their
//     old images), the version its /usr declares, the version-2 signature
//     by a trusted payload key, the statement's view of the manifest. The
//     bytes are hashed again on the way, so a file changed between the
//     passes is caught.
//
// The Report lists every failed check; the error wraps ErrVerification.
// The *Verified is nil unless everything passed. ctx is checked for every
// MiB read and every operation applied.
func Bundle(ctx context.Context, src io.ReaderAt, size int64, trust *Trust, opts Options) (*Verified, *Report, error) {
	rep := &Report{BundleSigners: []string{}, Payloads: []PayloadReport{}, Failures: []Failure{}}
	// failed ends the verification with every failure found so far.
	failed := func() (*Verified, *Report, error) {
		return nil, rep, &FailedError{Failures: slices.Clone(rep.Failures)}
	}
	// 1. Structure and digests.
	var envBytes []byte
	var members []Member
	err := bundle.ReadTarAt(ctxio.Reader(ctx, io.NewSectionReader(src, 0, size)), func(name string, off, n int64, body io.Reader) error {
		if name == bundle.EnvelopeName {
			b, err := io.ReadAll(body)
			envBytes = b
			return err
		}
		m := Member{Name: name, Offset: off, Size: n}
		h256, h1 := sha256.New(), sha1.New()
		if _, err := io.Copy(io.MultiWriter(h256, h1), body); err != nil {
			return err
		}
		h256.Sum(m.SHA256[:0])
		h1.Sum(m.SHA1[:0])
		members = append(members, m)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, rep, ctx.Err()
		}
		rep.fail("bundle", "format", "%s", strings.TrimPrefix(err.Error(), bundle.ErrFormat.Error()+": "))
		rep.formatErr = err
		return failed()
	}
	// 2. The envelope and the statement.
	st := checkEnvelope(rep, trust, opts, envBytes)
	if st == nil {
		return failed()
	}
	rep.Statement = st
	// An old release given for no delta is a mistake (a mislabelled
	// --old), not something to ignore.
	froms := map[string]bool{}
	for _, p := range st.Predicate.Payloads {
		if p.Kind == bundle.KindDelta {
			froms[p.FromVersion] = true
		}
	}
	for _, v := range slices.Sorted(maps.Keys(opts.Old)) {
		if len(froms) > 0 && !froms[v] {
			rep.failHint(bundle.EnvelopeName, "old", fmt.Sprintf("check the version in --old %s=…", v),
				"an old release %s was given, but the bundle has no delta from it (its deltas are from %s)", v, strings.Join(slices.Sorted(maps.Keys(froms)), ", "))
		}
	}
	// 3. Every member against the statement, before any is parsed.
	var matched []Member
	byName := map[string]bool{}
	for _, m := range members {
		byName[m.Name] = true
		if checkDigests(rep, st, m) {
			matched = append(matched, m)
		}
	}
	for _, sub := range st.Subject {
		if !byName[sub.Name] {
			rep.fail(sub.Name, "members", "listed in the statement but missing from the bundle")
		}
	}
	if len(rep.Failures) > 0 {
		return failed()
	}
	// 4. Authenticated bytes only: parse, apply, read filesystems. The
	// full payload first: the sysexts are checked against its /usr.
	rs := &releaseState{hostErr: errors.New("the full payload's /usr was not rebuilt")}
	order := slices.Clone(matched)
	slices.SortStableFunc(order, func(a, b Member) int {
		_, ea := st.Member(a.Name)
		_, eb := st.Member(b.Name)
		return cmp.Compare(kindOrder(ea.Kind), kindOrder(eb.Kind))
	})
	for _, m := range order {
		if err := ctx.Err(); err != nil {
			return nil, rep, err
		}
		checkMember(ctx, rep, st, trust, opts, rs, m, ctxio.Reader(ctx, io.NewSectionReader(src, m.Offset, m.Size)))
	}
	slices.SortStableFunc(rep.Payloads, func(a, b PayloadReport) int {
		return cmp.Compare(memberIndex(matched, a.Name), memberIndex(matched, b.Name))
	})
	if err := ctx.Err(); err != nil {
		return nil, rep, err
	}
	checkOneRelease(rep, st)
	if len(rep.Failures) > 0 {
		return failed()
	}
	rep.Valid = true
	v := &Verified{report: rep, channel: opts.Channel, members: map[string]Member{}, src: src}
	for _, m := range matched {
		v.members[m.Name] = m
	}
	return v, rep, nil
}

// checkDigests compares a member's size and digests with the statement.
func checkDigests(rep *Report, st *bundle.Statement, m Member) bool {
	sub, entry := st.Member(m.Name)
	if sub == nil || entry == nil {
		rep.fail(m.Name, "members", "not listed in the release statement")
		return false
	}
	got256, got1 := hex.EncodeToString(m.SHA256[:]), hex.EncodeToString(m.SHA1[:])
	if m.Size != entry.Size || got256 != sub.Digest["sha256"] || got1 != sub.Digest["sha1"] {
		rep.fail(m.Name, "digest", "%d bytes, sha256 %s, but the signed statement says %d bytes, sha256 %s: it is not the file that was signed, so it was not read further", m.Size, got256, entry.Size, sub.Digest["sha256"])
		return false
	}
	return true
}

func checkEnvelope(rep *Report, trust *Trust, opts Options, b []byte) *bundle.Statement {
	const member = bundle.EnvelopeName
	env, err := bundle.ParseEnvelope(b)
	if err != nil {
		rep.fail(member, "envelope", "%v", err)
		return nil
	}
	valid, untrusted, err := env.Verify(trust.BundleKeys())
	rep.UntrustedSigners = untrusted
	if err != nil {
		rep.fail(member, "signatures", "%v", err)
		return nil
	}
	rep.BundleSigners = valid
	// A channel's rule replaces the policy's threshold (dev-channel: any
	// one key); without a channel the policy's threshold applies. Either
	// is met before the statement is parsed.
	if opts.Channel != "" {
		if err := trust.ChannelAllowed(opts.Channel, valid); err != nil {
			rep.failHint(member, "channel", signHint, "%s%s", strings.TrimPrefix(err.Error(), ErrVerification.Error()+": "), untrustedNote(untrusted))
			return nil
		}
	} else if len(valid) < trust.Threshold {
		rep.failHint(member, "signatures", signHint,
			"signed by %d of the policy's bundle keys (%s), the policy needs %d of %s%s",
			len(valid), trust.Labels(valid), trust.Threshold, trust.Labels(slices.Sorted(maps.Keys(trust.BundleKeys()))), untrustedNote(untrusted))
		return nil
	}
	body, err := env.DecodedPayload()
	if err != nil {
		rep.fail(member, "payload", "%v", err)
		return nil
	}
	st, err := bundle.ParseStatement(body)
	if err != nil {
		rep.fail(member, "statement", "%v", err)
		return nil
	}
	rep.Version, rep.Board = st.Predicate.Version, st.Predicate.Board
	if !trust.BoardAllowed(st.Predicate.Board) {
		rep.fail(member, "statement", "board %s is not allowed by the policy", st.Predicate.Board)
	}
	return st
}

// checkMember parses and applies a member whose bytes matched the signed
// statement, hashing them again as they are read.
// kindOrder puts the full payload first.
func kindOrder(kind string) int {
	if kind == bundle.KindFull {
		return 0
	}
	return 1
}

func memberIndex(ms []Member, name string) int {
	return slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
}

func checkMember(ctx context.Context, rep *Report, st *bundle.Statement, trust *Trust, opts Options, rs *releaseState, m Member, body io.Reader) {
	name := m.Name
	sub, entry := st.Member(name)
	pr := PayloadReport{Name: name, Kind: entry.Kind}
	if entry.Kind == bundle.KindDelta {
		pr.PartitionSize = entry.PartitionSize
		if pr.PartitionSize == 0 && entry.OldPartition != nil {
			pr.PartitionSize = entry.OldPartition.Size
		}
	}
	defer func() { rep.Payloads = append(rep.Payloads, pr) }()
	prd, err := payload.NewReader(body, nil)
	if err != nil {
		rep.fail(name, "payload", "%v", err)
		return
	}
	var rebuilt []apply.Rebuilt
	old, haveOld := opts.Old[entry.FromVersion]
	if entry.Kind == bundle.KindDelta && !haveOld {
		err = prd.ReadAll()
		if err == nil && !opts.AllowUnappliedDeltas {
			rep.failHint(name, "delta", fmt.Sprintf("give the release it applies to: --old %s=flatcar_production_image-%s.bin.bz2 (or --allow-unapplied-deltas to accept it checked but not applied)", entry.FromVersion, entry.FromVersion),
				"not applied: no old release %s was given to apply it to, and unapplied deltas are not allowed", entry.FromVersion)
		}
	} else if bundle.InstallerFor(entry.Kind) == bundle.InstallerUeRs {
		// Extras are installed by ue-rs, whose rules are not update_engine's.
		var img apply.Rebuilt
		inspect := func(r io.ReaderAt, size int64) { checkSysext(ctx, rep, &pr, name, entry, rs, r, size) }
		img, err = apply.SimulateExtra(ctx, prd, apply.ExtraOptions{TempDir: opts.TempDir, Inspect: inspect})
		if err == nil && entry.Sysext != nil && pr.Sysext == nil && !slices.ContainsFunc(rep.Failures, func(f Failure) bool { return f.Member == name }) {
			rep.fail(name, "sysext", "the statement records a sysext image, but the extra was not checked as one")
		}
		if err == nil {
			rebuilt = []apply.Rebuilt{img}
		}
		pr.Applied = err == nil
	} else if entry.Kind == bundle.KindDelta && !checkOldVersion(ctx, rep, name, entry.FromVersion, old) {
		// The old image is another release: applying it would only add a
		// hash mismatch to the reason already given.
		err = prd.ReadAll()
	} else {
		src := apply.Sources{Partition: old.Partition, Kernel: old.Kernel, TempDir: opts.TempDir, Progress: opts.Progress, Name: name,
			PartitionName: old.PartitionName, KernelName: old.KernelName}
		if entry.Kind == bundle.KindDelta {
			// The partition the delta was built for, as the statement
			// records it; without the field, the one its manifest says.
			src.PartitionSize = uint64(entry.PartitionSize)
		}
		var part io.ReaderAt
		var partSize int64
		src.InspectPartition = func(r io.ReaderAt, size int64) {
			checkVersion(ctx, rep, &pr, name, st.Predicate.Version, r, size)
			part, partSize = r, size
			if entry.Kind == bundle.KindFull {
				rs.host, rs.hostErr = sysext.ReadHost(ctx, r, size, st.Predicate.Board)
			}
		}
		src.InspectKernel = func(r io.ReaderAt, size int64) {
			checkKernel(rep, &pr, name, st.Predicate.Board, part, partSize, r, size)
			checkSecureBoot(rep, &pr, name, st, trust, r, size)
		}
		rebuilt, err = apply.Simulate(ctx, prd, src)
		pr.Applied = err == nil
	}
	if err != nil {
		rep.fail(name, "payload", "%v", err)
		return
	}
	h := prd.Hashes()
	pr.Size, pr.SHA256 = h.Size, h.HexSHA256()
	if h.Size != entry.Size || h.HexSHA256() != sub.Digest["sha256"] || hex.EncodeToString(h.SHA1[:]) != sub.Digest["sha1"] {
		rep.fail(name, "digest", "changed while it was verified (%d bytes, sha256 %s on the second read)", h.Size, h.HexSHA256())
		return
	}
	pr.Rebuilt = rebuilt
	pubs := make([]crypto.PublicKey, 0, len(trust.PayloadKeys()))
	for _, k := range trust.PayloadKeys() {
		pubs = append(pubs, k)
	}
	sum, err := payload.Summarize(prd, pubs)
	if err != nil {
		rep.fail(name, "payload", "%v", err)
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
				rep.failHint(name, "payload signature", "the payload must be signed (last --key) by a key the policy's payload_keys lists: the one machines have baked in",
					"the version-2 signature (the one update_engine checks) is not by a trusted payload key (the policy trusts %s)", trust.Labels(slices.Sorted(maps.Keys(trust.PayloadKeys()))))
			}
			pr.SignedBy = s.KeyFingerprint
		}
	}
	if !client {
		rep.fail(name, "payload signature", "no version-2 signature")
	}
	if entry.NewPartition != nil && (sum.NewPartition == nil || sum.NewPartition.SHA256 != entry.NewPartition.SHA256 || int64(sum.NewPartition.Size) != entry.NewPartition.Size) {
		rep.fail(name, "statement", "new partition differs from the payload's manifest")
	}
	if d := entry.OldPartition; d != nil && (sum.OldPartition == nil || sum.OldPartition.SHA256 != d.SHA256 || int64(sum.OldPartition.Size) != d.Size) {
		rep.fail(name, "statement", "old partition differs from the payload's manifest")
	}
	if d := entry.OldKernel; d != nil {
		ok := false
		for _, p := range sum.Procedures {
			if p.Type == "KERNEL" && p.OldInfo != nil && p.OldInfo.SHA256 == d.SHA256 && int64(p.OldInfo.Size) == d.Size {
				ok = true
			}
		}
		if !ok {
			rep.fail(name, "statement", "old kernel differs from the payload's manifest")
		}
	}
	if entry.Kernel != nil {
		ok := false
		for _, p := range sum.Procedures {
			if p.Type == "KERNEL" && p.NewInfo != nil && p.NewInfo.SHA256 == entry.Kernel.SHA256 && int64(p.NewInfo.Size) == entry.Kernel.Size {
				ok = true
			}
		}
		if !ok {
			rep.fail(name, "statement", "kernel differs from the payload's manifest")
		}
	}
	if entry.Kind == bundle.KindFull {
		ok := false
		for _, p := range sum.Procedures {
			if p.Type == "KERNEL" && p.NewInfo != nil && p.NewInfo.Size > 0 {
				ok = true
			}
		}
		if !ok {
			rep.fail(name, "kernel", "the full payload carries no kernel: a machine would boot the new /usr with its old kernel, whose dm-verity root hash is another /usr's")
		}
	}
	if (entry.Kind == bundle.KindDelta) != (sum.Kind == "delta") {
		rep.fail(name, "statement", "kind %s, but the payload is a %s payload", entry.Kind, sum.Kind)
	}
}

// boardArch is the kernel architecture of each board.
var boardArch = map[string]string{"amd64-usr": "amd64", "arm64-usr": "arm64"}

// checkKernel ties the rebuilt kernel to its release: its architecture
// (an x86 bzImage or an arm64 Image) must be the statement's board's, and
// the dm-verity root hash it carries must be the one of the rebuilt /usr
// (its verity superblock and hash tree lie inside the USR image), or every
// machine would boot the new slot into a verity failure. A kernel that is
// neither kind of image (test payloads) is noted in the report, not failed.
func checkKernel(rep *Report, pr *PayloadReport, name, board string, part io.ReaderAt, partSize int64, kernel io.ReaderAt, kernelSize int64) {
	arch, vr, err := kernelMatchesUsr(part, partSize, kernel, kernelSize)
	if arch == "" && err == nil {
		pr.KernelNote = "kernel not checked against the board and /usr: it is neither an x86 bzImage nor an arm64 Image"
		return
	}
	pr.KernelArch = arch
	if want := boardArch[board]; arch != "" && want != arch {
		rep.fail(name, "board", "the statement's board is %s, but the kernel is an %s kernel: it would reach machines it cannot boot", board, arch)
	}
	if err != nil {
		rep.fail(name, "kernel", "%v", err)
		return
	}
	pr.VerityRootHash = vr.RootHash
}

// checkSecureBoot checks the rebuilt kernel's Authenticode signature
// against the policy's Secure Boot certificates (when it names any, the
// kernel must be signed by one of them) and the statement's record of it
// (the signer must be the one recorded, when one is; a recorded signer
// needs a signed kernel).
func checkSecureBoot(rep *Report, pr *PayloadReport, name string, st *bundle.Statement, trust *Trust, kernel io.ReaderAt, size int64) {
	certs := trust.SecureBootCerts()
	sig, err := authenticode.Verify(kernel, size, certs)
	recorded := st.Predicate.SecureBoot
	switch {
	case errors.Is(err, authenticode.ErrUnsigned) || errors.Is(err, authenticode.ErrNotPE):
		if errors.Is(err, authenticode.ErrUnsigned) {
			pr.SecureBootNote = "the kernel is not signed for Secure Boot"
		}
		if len(certs) > 0 {
			rep.failHint(name, "secure boot", "build the release from the kernel sbsign_util.sh signed",
				"the kernel is not signed for Secure Boot (%v), and the policy requires a signature by %s", err, certList(certs))
		} else if recorded != nil {
			rep.fail(name, "secure boot", "the statement records a kernel signed by %s, but the kernel is not signed", recorded.Subject)
		}
		return
	case err != nil && sig == nil:
		rep.fail(name, "secure boot", "%v", err)
		return
	case err != nil:
		rep.failHint(name, "secure boot", "sign the kernel with the Secure Boot key the policy names, or add its certificate with policy init --secure-boot-cert", "%v", err)
	}
	pr.SecureBoot = &bundle.SecureBoot{Subject: sig.Subject, Fingerprint: sig.Fingerprint, TrustedBy: sig.TrustedBy}
	// A statement from before the field records nothing; one that records
	// a signer must record this one.
	if recorded != nil && recorded.Fingerprint != sig.Fingerprint {
		rep.fail(name, "secure boot", "the kernel is signed by %s (SHA-256 %s), but the statement records one by %s (SHA-256 %s)", sig.Subject, sig.Fingerprint, recorded.Subject, recorded.Fingerprint)
	}
}

func certList(certs []*x509.Certificate) string {
	var s []string
	for _, c := range certs {
		s = append(s, fmt.Sprintf("%s (SHA-256 %s)", c.Subject, authenticode.Fingerprint(c)))
	}
	return strings.Join(s, " or ")
}

// checkSysext checks a rebuilt extra image. A sysext disk image (a GPT)
// is checked against the /usr the full payload rebuilt, and its findings
// against the statement's; an image that is no disk image is noted, unless
// the statement says it is a sysext.
func checkSysext(ctx context.Context, rep *Report, pr *PayloadReport, name string, entry *bundle.PayloadEntry, rs *releaseState, r io.ReaderAt, size int64) {
	if !isDisk(r) && entry.Sysext == nil {
		pr.SysextNote = "not a sysext disk image: its contents were not checked"
		return
	}
	if rs.host == nil {
		rep.fail(name, "sysext", "cannot check the sysext image against the release's /usr: %v", rs.hostErr)
		return
	}
	img, err := sysext.Check(ctx, r, size, strings.TrimSuffix(name, ".gz"), rs.host)
	if err != nil {
		rep.fail(name, "sysext", "%s", strings.TrimPrefix(err.Error(), sysext.ErrSysext.Error()+": "))
		rep.Failures[len(rep.Failures)-1].Err = err
		return
	}
	pr.Sysext = &bundle.Sysext{RootHash: img.RootHash, Certificate: img.Certificate, ExtensionRelease: img.ExtensionRelease, Version: img.Version}
	if x := entry.Sysext; x != nil && (x.RootHash != img.RootHash || x.Certificate != img.Certificate) {
		rep.fail(name, "sysext", "the image has root hash %s signed with certificate %s, but the statement records %s and %s", img.RootHash, img.Certificate, x.RootHash, x.Certificate)
	}
}

// BoardOfArch is the board of a kernel architecture ("" for none).
func BoardOfArch(arch string) string {
	for b, a := range boardArch {
		if a == arch {
			return b
		}
	}
	return ""
}

func kernelHead(kernel io.ReaderAt, size int64) []byte {
	head := make([]byte, min(size, 4096))
	n, _ := kernel.ReadAt(head, 0)
	return head[:n]
}

// kernelMatchesUsr reads the kernel's architecture and checks that the
// dm-verity root hash it carries is the one of the /usr part (the tree is
// computed once, and returned): "" and nil for a kernel that is neither an
// x86 bzImage nor an arm64 Image.
func kernelMatchesUsr(part io.ReaderAt, partSize int64, kernel io.ReaderAt, kernelSize int64) (string, *verity.Result, error) {
	head := kernelHead(kernel, kernelSize)
	_, arch, err := verity.KernelRootHash(head)
	if arch == "" {
		return "", nil, nil
	}
	if err != nil {
		return arch, nil, err
	}
	if part == nil {
		return arch, nil, fmt.Errorf("the rebuilt /usr was not available to check the kernel's root hash against")
	}
	vr, err := verity.Check(part, partSize, head)
	if err != nil {
		return arch, nil, fmt.Errorf("the kernel does not match its /usr: %w", err)
	}
	return arch, vr, nil
}

// checkOldVersion checks that the old image given for a delta declares
// the version the delta is from (when it declares one): its hashes are
// checked against the manifest's old_partition_info by the apply, which
// runs only when this reports true.
func checkOldVersion(ctx context.Context, rep *Report, name, from string, old Old) bool {
	path, shown := old.Partition, cmp.Or(old.PartitionName, old.Partition)
	f, err := os.Open(path)
	if err != nil {
		rep.fail(name, "delta", "the old image for %s: %v", from, err)
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		rep.fail(name, "delta", "the old image for %s: %v", from, err)
		return false
	}
	got, file, err := osrelease.Version(ctx, f, st.Size())
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem), errors.Is(err, osrelease.ErrNoVersion):
	case err != nil:
		rep.fail(name, "delta", "reading the old image for %s: %v", from, err)
		return false
	case got != from:
		rep.failHint(name, "delta", fmt.Sprintf("give the %s image: --old %s=flatcar_production_image-%s.bin.bz2", from, from, from),
			"the old image given for %s (%s) is release %s (its %s says so): the delta applies to %s", from, shown, got, file, from)
		return false
	}
	return true
}

// checkVersion ties the statement's version to the one the rebuilt /usr
// declares, so that a release cannot carry another build under its name.
// A partition that declares no version (no filesystem augen reads, or no
// os-release in it: test payloads, not a Flatcar /usr) is noted in the
// report, not failed; a filesystem that cannot be read fails.
func checkVersion(ctx context.Context, rep *Report, pr *PayloadReport, name, want string, r io.ReaderAt, size int64) {
	got, from, err := osrelease.Version(ctx, r, size)
	switch {
	case errors.Is(err, osrelease.ErrNoFilesystem):
		pr.VersionNote = "release version not checked: the new partition holds no ext2/3/4 or btrfs filesystem"
	case errors.Is(err, osrelease.ErrNoVersion):
		pr.VersionNote = "release version not checked: the new partition has no /usr/lib/os-release VERSION"
	case err != nil:
		rep.fail(name, "release version", "reading the new partition: %v", err)
	case got != want:
		pr.OSVersion = got
		rep.fail(name, "release version", "the statement says %s, but the new partition's %s says %s", want, from, got)
	default:
		pr.OSVersion = got
	}
}

// checkOneRelease refuses a release whose payloads install different
// systems: every delta must install the /usr and kernel the full payload
// installs (as the statement records them, from the manifests, and as
// the simulated applies rebuilt them), or machines that take the delta
// run another release than those that take the full payload.
func checkOneRelease(rep *Report, st *bundle.Statement) {
	var full *bundle.PayloadEntry
	for i := range st.Predicate.Payloads {
		if p := &st.Predicate.Payloads[i]; p.Kind == bundle.KindFull {
			full = p
		}
	}
	if full == nil {
		return
	}
	rebuilt := map[string]map[string][sha256.Size]byte{}
	for _, pr := range rep.Payloads {
		for _, r := range pr.Rebuilt {
			if rebuilt[pr.Name] == nil {
				rebuilt[pr.Name] = map[string][sha256.Size]byte{}
			}
			rebuilt[pr.Name][r.Name] = r.SHA256
		}
	}
	same := func(a, b *bundle.Digests) bool {
		return (a == nil) == (b == nil) && (a == nil || *a == *b)
	}
	for _, p := range st.Predicate.Payloads {
		if p.Kind != bundle.KindDelta {
			continue
		}
		if !same(p.NewPartition, full.NewPartition) {
			rep.fail(p.Name, "release", "installs another /usr than %s (sha256 %s, the full payload's %s): machines taking the delta would run another release", full.Name, digestOf(p.NewPartition), digestOf(full.NewPartition))
			continue
		}
		if !same(p.Kernel, full.Kernel) {
			rep.fail(p.Name, "release", "installs another kernel than %s (sha256 %s, the full payload's %s)", full.Name, digestOf(p.Kernel), digestOf(full.Kernel))
			continue
		}
		d, f := rebuilt[p.Name], rebuilt[full.Name]
		for _, target := range []string{"partition", "KERNEL"} {
			dh, ok1 := d[target]
			fh, ok2 := f[target]
			if ok1 && ok2 && dh != fh {
				rep.fail(p.Name, "release", "applied, it rebuilt another %s than %s (sha256 %x, the full payload's %x)", target, full.Name, dh, fh)
			}
		}
	}
}

func digestOf(d *bundle.Digests) string {
	if d == nil {
		return "none"
	}
	return d.SHA256
}
