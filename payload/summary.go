package payload

import (
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/augen-project/augen/pubkey"
)

// Summary is what inspect and verify report about a payload. Its JSON shape
// is stable (doc/payload-format.md, "Inspect output").
type Summary struct {
	// tried are the fingerprints of the keys the signatures were checked
	// against, for errors.
	tried []string

	FormatVersion int    `json:"format_version"`
	Kind          string `json:"kind"` // "full" or "delta"
	ManifestSize  int64  `json:"manifest_size"`
	DataSize      uint64 `json:"data_size"`
	BlockSize     uint32 `json:"block_size"`

	NewPartition *InfoSummary `json:"new_partition"`
	OldPartition *InfoSummary `json:"old_partition,omitempty"`

	Operations []OpStats `json:"operations"`
	// UnchangedBlocks counts the blocks of the new image no operation
	// writes (a delta leaves them as they were).
	UnchangedBlocks uint64             `json:"unchanged_blocks"`
	Procedures      []ProcedureSummary `json:"procedures"`
	NoopOps         int                `json:"noop_operations"`
	Signatures      []SignatureSummary `json:"signatures"`
	SignedHash      string             `json:"signed_hash_sha256"`
	Omaha           OmahaSummary       `json:"omaha"`
	// Files is set by inspect --image (SummarizeFiles).
	Files *FileSummary `json:"files,omitempty"`
}

// InfoSummary is an InstallInfo in hex.
type InfoSummary struct {
	Size   uint64 `json:"size"`
	SHA256 string `json:"sha256"`
}

// OpStats counts the partition operations of one type: how many, how many
// destination blocks they cover, and how many data bytes they cost.
type OpStats struct {
	Type      string `json:"type"`
	Count     int    `json:"count"`
	Blocks    uint64 `json:"blocks"`
	DataBytes uint64 `json:"data_bytes"`
}

// ProcedureSummary describes a KERNEL or PCR_POLICY procedure.
type ProcedureSummary struct {
	Type       string       `json:"type"`
	Operations []OpStats    `json:"operations"`
	NewInfo    *InfoSummary `json:"new_info,omitempty"`
	OldInfo    *InfoSummary `json:"old_info,omitempty"`
}

// SignatureSummary describes one entry of the Signatures blob.
type SignatureSummary struct {
	Version uint32 `json:"version"`
	Size    int    `json:"size"`
	// CheckedByClient is true for the entry update_engine verifies: the
	// first with version 2.
	CheckedByClient bool `json:"checked_by_client"`
	// KeyFingerprint names the given public key that verifies the entry
	// ("" when none of them does, or none was given).
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
}

// OmahaSummary holds the values an update service publishes.
type OmahaSummary struct {
	Size         int64  `json:"size"`
	SHA256Base64 string `json:"sha256_base64"`
	SHA1Base64   string `json:"sha1_base64"`
	SHA256Hex    string `json:"sha256_hex"`
}

func infoSummary(i *InstallInfo) *InfoSummary {
	if i == nil {
		return nil
	}
	return &InfoSummary{Size: i.GetSize(), SHA256: hex.EncodeToString(i.GetHash())}
}

func opStats(ops []*Operation) []OpStats {
	by := map[OperationType]*OpStats{}
	for _, op := range ops {
		s := by[op.GetType()]
		if s == nil {
			s = &OpStats{Type: op.GetType().String()}
			by[op.GetType()] = s
		}
		s.Count++
		for _, e := range op.DstExtents {
			if e.GetStartBlock() != SparseHole {
				s.Blocks += e.GetNumBlocks()
			}
		}
		s.DataBytes += uint64(op.GetDataLength())
	}
	out := []OpStats{}
	for _, s := range by {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Check reads a whole payload with the Reader's rules (nothing is
// decompressed or applied) and summarizes it, with each signature checked
// against pubs. It does not decide whether the signatures suffice:
// Summary.CheckSignature applies the client's rule.
func Check(r io.Reader, pubs []crypto.PublicKey) (*Summary, error) {
	pr, err := NewReader(r, nil)
	if err != nil {
		return nil, err
	}
	if err := pr.ReadAll(); err != nil {
		return nil, err
	}
	return Summarize(pr, pubs)
}

// Summarize describes a payload that pr has read to the end, matching its
// signatures against pubs.
func Summarize(pr *Reader, pubs []crypto.PublicKey) (*Summary, error) {
	if !pr.Done() {
		return nil, fmt.Errorf("payload: Summarize needs a fully read payload")
	}
	m := pr.Manifest()
	s := &Summary{
		FormatVersion: Version,
		Kind:          "full",
		ManifestSize:  pr.ManifestSize(),
		DataSize:      pr.DataSize(),
		BlockSize:     m.GetBlockSize(),
		NewPartition:  infoSummary(m.GetNewPartitionInfo()),
		OldPartition:  infoSummary(m.GetOldPartitionInfo()),
		Operations:    opStats(m.PartitionOperations),
		Procedures:    []ProcedureSummary{},
		NoopOps:       len(m.NoopOperations),
		Signatures:    []SignatureSummary{},
		SignedHash:    hex.EncodeToString(pr.SignedHash()),
	}
	if m.OldPartitionInfo != nil {
		s.Kind = "delta"
	}
	written := uint64(0)
	for _, o := range s.Operations {
		written += o.Blocks
	}
	if total := m.GetNewPartitionInfo().GetSize() / BlockSize; written < total {
		s.UnchangedBlocks = total - written
	}
	for _, p := range m.Procedures {
		t := "UNTYPED"
		if p.Type != nil {
			t = p.GetType().String()
		}
		s.Procedures = append(s.Procedures, ProcedureSummary{Type: t, Operations: opStats(p.Operations), NewInfo: infoSummary(p.GetNewInfo()), OldInfo: infoSummary(p.GetOldInfo())})
	}
	h := pr.Hashes()
	s.Omaha = OmahaSummary{Size: h.Size, SHA256Base64: h.OmahaSHA256(), SHA1Base64: h.OmahaSHA1(), SHA256Hex: h.HexSHA256()}
	for _, pub := range pubs {
		if fp, err := pubkey.Fingerprint(pub); err == nil {
			s.tried = append(s.tried, fp)
		}
	}
	client := -1
	if sigs := pr.Signatures(); sigs != nil {
		for i, e := range sigs.Signatures {
			ss := SignatureSummary{Version: e.GetVersion(), Size: len(e.GetData())}
			if client < 0 && e.GetVersion() == CurrentSignatureVersion {
				client = i
				ss.CheckedByClient = true
			}
			for _, pub := range pubs {
				if k, ok := pub.(*rsa.PublicKey); ok && VerifyDigest(k, pr.SignedHash(), e.GetData()) == nil {
					ss.KeyFingerprint, _ = pubkey.Fingerprint(pub)
					break
				}
			}
			s.Signatures = append(s.Signatures, ss)
		}
	}
	return s, nil
}

// CheckClientSignature applies update_engine's rule: the first signature
// with version 2 must verify with one of the given keys; the others are
// not looked at (clients ignore them).
func (s *Summary) CheckClientSignature() error {
	for _, e := range s.Signatures {
		if e.CheckedByClient {
			if e.KeyFingerprint == "" {
				return fmt.Errorf("%w: the signature update_engine checks (version 2, %s) does not verify with %s", ErrSignature, sigKind(e.Size), s.triedKeys())
			}
			return nil
		}
	}
	if len(s.Signatures) == 0 {
		return fmt.Errorf("%w: the payload is not signed", ErrSignature)
	}
	return fmt.Errorf("%w: no signature has version 2, the only one update_engine checks", ErrSignature)
}

// CheckSignature requires every signature to verify with a given key, and
// one of them to be the one update_engine checks: the stricter rule, for
// payloads whose every signer is known.
func (s *Summary) CheckSignature() error {
	if len(s.Signatures) == 0 {
		return fmt.Errorf("%w: the payload is not signed", ErrSignature)
	}
	client := false
	for i, e := range s.Signatures {
		if e.KeyFingerprint == "" {
			if e.CheckedByClient {
				return fmt.Errorf("%w: signature %d (version 2, the one update_engine checks; %s) does not verify with %s", ErrSignature, i, sigKind(e.Size), s.triedKeys())
			}
			// Clients ignore it, but other verifiers do not, and a
			// signature nobody can check is one nobody should ship.
			return fmt.Errorf("%w: signature %d (version %d, %s) does not verify with %s (give every signer's key with --pubkey)", ErrSignature, i, e.Version, sigKind(e.Size), s.triedKeys())
		}
		client = client || e.CheckedByClient
	}
	if !client {
		return fmt.Errorf("%w: no signature has version 2, the only one update_engine checks", ErrSignature)
	}
	return nil
}

// triedKeys names the keys a signature was checked against.
func (s *Summary) triedKeys() string {
	switch len(s.tried) {
	case 0:
		return "any given public key (none was given)"
	case 1:
		return "the given public key " + s.tried[0]
	}
	return fmt.Sprintf("any of the %d given public keys (%s)", len(s.tried), strings.Join(s.tried, ", "))
}

// sigKind says what key made a signature of n bytes: an RSA key of n*8
// bits (update_engine's only kind).
func sigKind(n int) string { return fmt.Sprintf("made by a %d-bit RSA key", n*8) }
