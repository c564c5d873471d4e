// Package dist describes augen's own release, as augen describes
// Flatcar's: an SPDX software bill of materials read from the binaries'
// embedded build information (every module built in, with its go.sum
// hash), and an in-toto provenance statement of the binaries (SLSA
// provenance v1) in a DSSE envelope signed with the bundle code and any key
// augen opens. Verify checks a downloaded release against a trust policy's
// bundle keys and the files' digests. Everything written is deterministic:
// the same binaries, version and time give the same bytes (and, with RSA
// or Ed25519 keys, the same signatures).
package dist

import (
	"crypto"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/strictjson"
)

// Types of what is written.
const (
	PredicateTypeSLSA = "https://slsa.dev/provenance/v1"
	BuildType         = "https://github.com/augen-project/augen/scripts/release.sh@v1"
	// MaxEnvelope bounds a provenance file before it is parsed.
	MaxEnvelope = 1 << 20
	// MaxBinary bounds a file hashed as a subject.
	MaxBinary = 1 << 30
)

// ErrProvenance wraps every reason a release is refused.
var ErrProvenance = augen.Rejection("dist: the release does not verify")

// Module is one Go module built into a binary.
type Module struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Sum     string `json:"sum,omitempty"`
}

// Binary is what a binary's embedded build information says.
type Binary struct {
	Name      string   `json:"name"`
	SHA256    string   `json:"sha256"`
	GoVersion string   `json:"go_version"`
	Main      Module   `json:"main"`
	Deps      []Module `json:"deps"`
	// Settings are the build settings (GOOS, GOARCH, CGO_ENABLED,
	// -trimpath, -ldflags, vcs.revision…), sorted.
	Settings map[string]string `json:"settings"`
}

// ReadBinary reads a Go binary's build information and hashes it.
func ReadBinary(path string) (*Binary, error) {
	sum, err := hashFile(path)
	if err != nil {
		return nil, err
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := &Binary{Name: filepath.Base(path), SHA256: sum, GoVersion: info.GoVersion, Settings: map[string]string{},
		Main: Module{Path: info.Main.Path, Version: info.Main.Version, Sum: info.Main.Sum}}
	for _, d := range info.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		b.Deps = append(b.Deps, Module{Path: m.Path, Version: m.Version, Sum: m.Sum})
	}
	sort.Slice(b.Deps, func(i, j int) bool { return b.Deps[i].Path < b.Deps[j].Path })
	for _, s := range info.Settings {
		b.Settings[s.Key] = s.Value
	}
	return b, nil
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, MaxBinary+1))
	if err != nil {
		return "", err
	}
	if n > MaxBinary {
		return "", fmt.Errorf("%s: more than %d bytes", path, int64(MaxBinary))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SPDX 2.3, the subset an SBOM of Go modules needs.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string         `json:"name"`
	SPDXID           string         `json:"SPDXID"`
	VersionInfo      string         `json:"versionInfo,omitempty"`
	DownloadLocation string         `json:"downloadLocation"`
	FilesAnalyzed    bool           `json:"filesAnalyzed"`
	Checksums        []spdxChecksum `json:"checksums,omitempty"`
	ExternalRefs     []spdxRef      `json:"externalRefs,omitempty"`
	Comment          string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM writes an SPDX 2.3 JSON document describing the binaries and every
// module built into them (the union), created at created.
func SBOM(version string, bins []*Binary, created time.Time) ([]byte, error) {
	if len(bins) == 0 {
		return nil, errors.New("dist: no binaries")
	}
	h := sha256.New()
	for _, b := range bins {
		h.Write([]byte(b.Name + "\x00" + b.SHA256 + "\x00"))
	}
	doc := spdxDoc{SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT", Name: "augen-" + version,
		DocumentNamespace: fmt.Sprintf("https://github.com/augen-project/augen/releases/%s/sbom-%x", version, h.Sum(nil)[:8]),
		CreationInfo:      spdxCreation{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: augen-" + version}}}
	id := func(kind, s string) string {
		return "SPDXRef-" + kind + "-" + strings.NewReplacer("/", "-", "@", "-", "+", "-", "_", "-", "~", "-").Replace(s)
	}
	mods := map[string]Module{}
	for _, b := range bins {
		bid := id("File", b.Name)
		doc.Packages = append(doc.Packages, spdxPackage{Name: b.Name, SPDXID: bid, VersionInfo: version, DownloadLocation: "NOASSERTION",
			Checksums: []spdxChecksum{{"SHA256", b.SHA256}},
			Comment:   fmt.Sprintf("%s, built with %s for %s/%s", b.Main.Path, b.GoVersion, b.Settings["GOOS"], b.Settings["GOARCH"])})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", bid})
		for _, m := range b.Deps {
			mods[m.Path+"@"+m.Version] = m
			doc.Relationships = append(doc.Relationships, spdxRelationship{bid, "DEPENDS_ON", id("Package", m.Path+"@"+m.Version)})
		}
	}
	for _, k := range slices.Sorted(keysOf(mods)) {
		m := mods[k]
		p := spdxPackage{Name: m.Path, SPDXID: id("Package", k), VersionInfo: m.Version, DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			ExternalRefs: []spdxRef{{"PACKAGE-MANAGER", "purl", "pkg:golang/" + m.Path + "@" + m.Version}}}
		if m.Sum != "" {
			p.Comment = "go.sum " + m.Sum
		}
		doc.Packages = append(doc.Packages, p)
	}
	return json.MarshalIndent(doc, "", "  ")
}

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// SBOMModules lists the modules an SBOM names (path@version), for checks.
func SBOMModules(b []byte) ([]string, error) {
	var doc spdxDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var out []string
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			if r.Type == "purl" {
				out = append(out, strings.TrimPrefix(r.Locator, "pkg:golang/"))
			}
		}
	}
	return out, nil
}

// Statement is the provenance: an in-toto statement whose subjects are
// the release's files.
type Statement struct {
	Type          string           `json:"_type"`
	Subject       []bundle.Subject `json:"subject"`
	PredicateType string           `json:"predicateType"`
	Predicate     Provenance       `json:"predicate"`
}

// Provenance is SLSA provenance v1, as far as a local reproducible build
// can state it.
type Provenance struct {
	BuildDefinition struct {
		BuildType            string            `json:"buildType"`
		ExternalParameters   map[string]string `json:"externalParameters"`
		ResolvedDependencies []Dependency      `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata struct {
			StartedOn string `json:"startedOn"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

// Dependency is a resolved input: a Go module, or the toolchain.
type Dependency struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest,omitempty"`
}

// NewStatement describes files (the binaries and the files beside them:
// SHA256SUMS, the SBOM) built from source revision by release.sh.
func NewStatement(version, revision string, files []string, bins []*Binary, created time.Time) (*Statement, error) {
	s := &Statement{Type: bundle.StatementType, PredicateType: PredicateTypeSLSA}
	for _, f := range files {
		sum, err := hashFile(f)
		if err != nil {
			return nil, err
		}
		s.Subject = append(s.Subject, bundle.Subject{Name: filepath.Base(f), Digest: map[string]string{"sha256": sum}})
	}
	sort.Slice(s.Subject, func(i, j int) bool { return s.Subject[i].Name < s.Subject[j].Name })
	bd := &s.Predicate.BuildDefinition
	bd.BuildType = BuildType
	bd.ExternalParameters = map[string]string{"version": version, "source": "git+https://github.com/augen-project/augen@" + revision}
	seen := map[string]bool{}
	for _, b := range bins {
		if !seen["go:"+b.GoVersion] {
			seen["go:"+b.GoVersion] = true
			bd.ResolvedDependencies = append(bd.ResolvedDependencies, Dependency{URI: "https://go.dev/dl/" + b.GoVersion})
		}
		for _, m := range b.Deps {
			uri := "pkg:golang/" + m.Path + "@" + m.Version
			if seen[uri] {
				continue
			}
			seen[uri] = true
			d := Dependency{URI: uri}
			if m.Sum != "" {
				d.Digest = map[string]string{"gosum": m.Sum}
			}
			bd.ResolvedDependencies = append(bd.ResolvedDependencies, d)
		}
	}
	sort.Slice(bd.ResolvedDependencies, func(i, j int) bool { return bd.ResolvedDependencies[i].URI < bd.ResolvedDependencies[j].URI })
	s.Predicate.RunDetails.Builder.ID = BuildType
	s.Predicate.RunDetails.Metadata.StartedOn = created.UTC().Format(time.RFC3339)
	return s, nil
}

// Sign wraps the statement in a DSSE envelope signed by signers.
func (s *Statement) Sign(signers []crypto.Signer) ([]byte, error) {
	payload, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	env := bundle.NewEnvelope(bundle.PayloadTypeInToto, payload)
	for _, k := range signers {
		if err := env.Sign(k); err != nil {
			return nil, err
		}
	}
	return env.Marshal()
}

// Verified is what Verify found.
type Verified struct {
	Statement *Statement
	// SignedBy are the trusted keys whose signatures verify.
	SignedBy []string
	// Files are the subjects checked against the files in the directory.
	Files []string
}

// Verify checks a provenance envelope: at least threshold signatures by
// trusted keys (a trusted key's signature that does not verify fails
// it), then every subject against the file of its name in dir (all of them
// must be there).
func Verify(envelope []byte, trusted map[string]crypto.PublicKey, threshold int, dir string) (*Verified, error) {
	if len(envelope) > MaxEnvelope {
		return nil, fmt.Errorf("%w: the provenance is %d bytes, more than %d", ErrProvenance, len(envelope), MaxEnvelope)
	}
	env, err := bundle.ParseEnvelope(envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProvenance, err)
	}
	if env.PayloadType != bundle.PayloadTypeInToto {
		return nil, fmt.Errorf("%w: payload type %q", ErrProvenance, env.PayloadType)
	}
	valid, _, err := env.Verify(trusted)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProvenance, err)
	}
	if len(valid) < max(threshold, 1) {
		return nil, fmt.Errorf("%w: signed by %d trusted key(s), the policy needs %d", ErrProvenance, len(valid), max(threshold, 1))
	}
	payload, err := env.DecodedPayload()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProvenance, err)
	}
	var st Statement
	if err := strictjson.Decode(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: the statement: %v", ErrProvenance, err)
	}
	if st.Type != bundle.StatementType || st.PredicateType != PredicateTypeSLSA || len(st.Subject) == 0 {
		return nil, fmt.Errorf("%w: statement type %q, predicate %q, %d subjects", ErrProvenance, st.Type, st.PredicateType, len(st.Subject))
	}
	v := &Verified{Statement: &st, SignedBy: valid}
	for _, sub := range st.Subject {
		if sub.Name != filepath.Base(sub.Name) || sub.Name == "." || sub.Name == ".." {
			return nil, fmt.Errorf("%w: subject %q is not a file name", ErrProvenance, sub.Name)
		}
		got, err := hashFile(filepath.Join(dir, sub.Name))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrProvenance, sub.Name, err)
		}
		if got != sub.Digest["sha256"] {
			return nil, fmt.Errorf("%w: %s has SHA-256 %s, the signed provenance says %s: it is not the file that was released", ErrProvenance, sub.Name, got, sub.Digest["sha256"])
		}
		v.Files = append(v.Files, sub.Name)
	}
	return v, nil
}
