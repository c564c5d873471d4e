package bundle

import (
	"crypto"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/pubkey"
)

// PayloadFile is a payload to put in a bundle.
type PayloadFile struct {
	Path        string
	Name        string // its name in the bundle
	Kind        string
	FromVersion string // deltas
	// Sysext (extras) is what was checked of the sysext image it installs.
	Sysext *Sysext
}

// BuildOptions describe a release.
type BuildOptions struct {
	AppID, Version, Board string
	// RequiresVersion, if set, is the oldest version that may update to
	// the release directly (Release.RequiresVersion).
	RequiresVersion string
	Payloads        []PayloadFile
	// PayloadKeys are the public keys that may have signed the payloads;
	// the statement records those whose signatures verify.
	PayloadKeys []crypto.PublicKey
	InputImage  *Digests
	// SecureBoot is the kernel's checked Secure Boot signature.
	SecureBoot *SecureBoot
	Augen      string
	// MTime stamps every member (SOURCE_DATE_EPOCH, or the build time
	// recorded once).
	MTime time.Time
	// Signers sign the envelope.
	Signers []crypto.Signer
}

// NewStatement reads every payload (checking it) and builds the release
// statement.
func NewStatement(opts BuildOptions) (*Statement, error) {
	if opts.AppID == "" {
		opts.AppID = FlatcarAppID
	}
	s := &Statement{Type: StatementType, PredicateType: PredicateTypeRelease, Predicate: Release{
		AppID: opts.AppID, Version: opts.Version, Board: opts.Board, RequiresVersion: opts.RequiresVersion, InputImage: opts.InputImage, SecureBoot: opts.SecureBoot, Augen: opts.Augen, PayloadKeys: []string{},
	}}
	keys := map[string]bool{}
	for _, pf := range opts.Payloads {
		entry, signers, err := describe(pf, opts.PayloadKeys)
		if err != nil {
			return nil, err
		}
		for _, k := range signers {
			keys[k] = true
		}
		s.Predicate.Payloads = append(s.Predicate.Payloads, *entry)
		sha1hex, _ := b64hex(entry.SHA1Base64)
		s.Subject = append(s.Subject, Subject{Name: entry.Name, Digest: map[string]string{"sha256": entry.SHA256Hex, "sha1": sha1hex}})
	}
	for k := range keys {
		s.Predicate.PayloadKeys = append(s.Predicate.PayloadKeys, k)
	}
	sort.Strings(s.Predicate.PayloadKeys)
	sort.Slice(s.Subject, func(i, j int) bool { return s.Subject[i].Name < s.Subject[j].Name })
	sort.Slice(s.Predicate.Payloads, func(i, j int) bool { return s.Predicate.Payloads[i].Name < s.Predicate.Payloads[j].Name })
	return s, s.Check()
}

// describe reads one payload whole, with every reader rule, and returns
// its entry and the IDs of the given keys whose signatures verify.
func describe(pf PayloadFile, keys []crypto.PublicKey) (*PayloadEntry, []string, error) {
	f, err := os.Open(pf.Path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	pr, err := payload.NewReader(f, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", pf.Path, err)
	}
	if err := pr.ReadAll(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", pf.Path, err)
	}
	sum, err := payload.Summarize(pr, keys)
	if err != nil {
		return nil, nil, err
	}
	var signers []string
	for _, s := range sum.Signatures {
		if s.KeyFingerprint != "" {
			signers = append(signers, s.KeyFingerprint)
		}
	}
	e := &PayloadEntry{Name: pf.Name, Kind: pf.Kind, FromVersion: pf.FromVersion, Size: sum.Omaha.Size, Installer: InstallerFor(pf.Kind),
		SHA1Base64: sum.Omaha.SHA1Base64, SHA256Base64: sum.Omaha.SHA256Base64, SHA256Hex: sum.Omaha.SHA256Hex, Sysext: pf.Sysext}
	if pf.Kind != KindExtra {
		e.NewPartition = &Digests{Size: int64(sum.NewPartition.Size), SHA256: sum.NewPartition.SHA256}
		for _, p := range sum.Procedures {
			if p.Type == "KERNEL" && p.NewInfo != nil {
				e.Kernel = &Digests{Size: int64(p.NewInfo.Size), SHA256: p.NewInfo.SHA256}
			}
			if p.Type == "KERNEL" && p.OldInfo != nil && pf.Kind == KindDelta {
				e.OldKernel = &Digests{Size: int64(p.OldInfo.Size), SHA256: p.OldInfo.SHA256}
			}
		}
		if sum.OldPartition != nil && pf.Kind == KindDelta {
			e.OldPartition = &Digests{Size: int64(sum.OldPartition.Size), SHA256: sum.OldPartition.SHA256}
			// augen's deltas describe the whole partition they are for.
			e.PartitionSize = int64(sum.OldPartition.Size)
		}
	}
	return e, signers, nil
}

func b64hex(s string) (string, error) {
	b, err := decodeB64(s)
	return hex.EncodeToString(b), err
}

// Build writes the bundle: the signed envelope over the statement, then
// the payloads, as a deterministic tar.
func Build(w io.Writer, opts BuildOptions) (*Statement, error) {
	st, err := NewStatement(opts)
	if err != nil {
		return nil, err
	}
	body, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	env := NewEnvelope(PayloadTypeInToto, body)
	for _, s := range opts.Signers {
		if err := env.Sign(s); err != nil {
			return nil, err
		}
	}
	envBytes, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	members := []Member{{Name: EnvelopeName, Size: int64(len(envBytes)), Open: bytesOpener(envBytes)}}
	for _, pf := range opts.Payloads {
		st, err := os.Stat(pf.Path)
		if err != nil {
			return nil, err
		}
		path := pf.Path
		members = append(members, Member{Name: pf.Name, Size: st.Size(), Open: func() (io.ReadCloser, error) { return os.Open(path) }})
	}
	return st, WriteTar(w, members, opts.MTime)
}

// KeyID is a public key's ID in envelopes, statements and policies.
func KeyID(pub crypto.PublicKey) (string, error) { return pubkey.Fingerprint(pub) }
