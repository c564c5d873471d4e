// Package verify checks payloads and release bundles against a trust
// policy. It imports no signer and no network code (it builds without cgo):
// verification needs public keys only. Every failure wraps
// ErrVerification.
package verify

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/internal/strictjson"
	"github.com/augen-project/augen/pubkey"
)

// ErrVerification wraps every reason a bundle or payload is not trusted.
var ErrVerification = augen.Rejection("verify: verification failed")

func failf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerification, fmt.Sprintf(format, args...))
}

// PolicyVersion is the only policy format version.
const PolicyVersion = 1

// MaxPolicySize bounds a policy file.
const MaxPolicySize = 1 << 20

// Policy says whom to trust: bundle keys with a threshold (k of n),
// payload keys (the ones clients have baked in), boards, and for each
// channel how many of which bundle keys must have signed.
type Policy struct {
	Version     int                    `json:"version"`
	BundleKeys  []Key                  `json:"bundle_keys"`
	Threshold   int                    `json:"threshold"`
	PayloadKeys []Key                  `json:"payload_keys"`
	Boards      []string               `json:"boards"`
	Channels    map[string]ChannelRule `json:"channels"`
	// SecureBootCerts (PEM) are the certificates a release's kernel must
	// be signed with for Secure Boot (a leaf, or a CA that certifies the
	// signer: policy init --secure-boot-cert). When the policy names any,
	// an unsigned kernel, or one signed by another key, is refused.
	SecureBootCerts []string `json:"secure_boot_certs,omitempty"`
}

// Key is a trusted public key: its fingerprint (hex SHA-256 of the
// SubjectPublicKeyInfo), its PEM, and optionally a name for people ("the
// release officer", "payload-2026"), which every output shows next to the
// fingerprint. The fingerprint is what is checked; the name only says who.
type Key struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	PEM  string `json:"pem"`
}

// MaxKeyName bounds a key's name.
const MaxKeyName = 64

// CheckKeyName refuses a name that could not be shown on one line or
// could pass for a fingerprint.
func CheckKeyName(name string) error {
	if len(name) > MaxKeyName {
		return fmt.Errorf("key name %q: at most %d bytes", name, MaxKeyName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '(' || r == ')' {
			return fmt.Errorf("key name %q: no control characters or parentheses", name)
		}
	}
	if len(name) == 64 && hexOnly(name) {
		return fmt.Errorf("key name %q looks like a fingerprint", name)
	}
	return nil
}

func hexOnly(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Name is the name the policy gives the key with this fingerprint ("" for
// none or an unknown key).
func (t *Trust) Name(id string) string { return t.names[id] }

// Label is how outputs show a key: "NAME (fingerprint)", or the
// fingerprint alone when the policy names it not.
func (t *Trust) Label(id string) string {
	if t != nil && t.names[id] != "" {
		return t.names[id] + " (" + id + ")"
	}
	return id
}

// ChannelRule allows a channel when Threshold of Keys (all bundle keys if
// empty) have signed the bundle.
type ChannelRule struct {
	Threshold int      `json:"threshold"`
	Keys      []string `json:"keys,omitempty"`
}

// Trust is a checked policy with its keys parsed.
type Trust struct {
	Policy
	bundle  map[string]crypto.PublicKey
	payload map[string]crypto.PublicKey
	names   map[string]string
	sb      []*x509.Certificate
}

// SecureBootCerts are the policy's Secure Boot certificates, parsed.
func (t *Trust) SecureBootCerts() []*x509.Certificate { return t.sb }

// ParsePolicy reads and checks a policy strictly: no unknown fields,
// every key's ID is its fingerprint, thresholds reachable.
func ParsePolicy(r io.Reader) (*Trust, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxPolicySize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("policy: more than %d bytes", MaxPolicySize)
	}
	var p Policy
	if err := strictjson.Decode(b, &p); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	return NewTrust(p)
}

// NewTrust checks a policy and parses its keys.
func NewTrust(p Policy) (*Trust, error) {
	if p.Version != PolicyVersion {
		return nil, fmt.Errorf("policy: version %d (this augen reads version %d)", p.Version, PolicyVersion)
	}
	t := &Trust{Policy: p, names: map[string]string{}}
	var err error
	seen := map[string]string{}
	for _, k := range append(append([]Key{}, p.BundleKeys...), p.PayloadKeys...) {
		if k.Name == "" {
			continue
		}
		if err := CheckKeyName(k.Name); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		if other, dup := seen[k.Name]; dup && other != k.ID {
			return nil, fmt.Errorf("policy: two keys are named %q", k.Name)
		}
		if n, ok := t.names[k.ID]; ok && n != k.Name {
			return nil, fmt.Errorf("policy: key %s is named both %q and %q", k.ID, n, k.Name)
		}
		seen[k.Name], t.names[k.ID] = k.ID, k.Name
	}
	if t.bundle, err = parseKeys(p.BundleKeys, "bundle_keys"); err != nil {
		return nil, err
	}
	if t.payload, err = parseKeys(p.PayloadKeys, "payload_keys"); err != nil {
		return nil, err
	}
	if len(t.bundle) == 0 || len(t.payload) == 0 {
		return nil, errors.New("policy: needs at least one bundle key and one payload key")
	}
	if p.Threshold < 1 || p.Threshold > len(t.bundle) {
		return nil, fmt.Errorf("policy: threshold %d of %d bundle keys cannot be met", p.Threshold, len(t.bundle))
	}
	if len(p.Boards) == 0 {
		return nil, errors.New("policy: no boards allowed")
	}
	for i, c := range p.SecureBootCerts {
		blk, rest := pem.Decode([]byte(c))
		if blk == nil || blk.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) > 0 {
			return nil, fmt.Errorf("policy: secure_boot_certs[%d] is not one PEM certificate", i)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("policy: secure_boot_certs[%d]: %v", i, err)
		}
		t.sb = append(t.sb, cert)
	}
	for name, rule := range p.Channels {
		n := len(rule.Keys)
		if n == 0 {
			n = len(t.bundle)
		}
		for _, id := range rule.Keys {
			if _, ok := t.bundle[id]; !ok {
				return nil, fmt.Errorf("policy: channel %s names key %s, which is not a bundle key", name, id)
			}
		}
		if rule.Threshold < 1 || rule.Threshold > n {
			return nil, fmt.Errorf("policy: channel %s: threshold %d of %d keys cannot be met", name, rule.Threshold, n)
		}
	}
	return t, nil
}

func parseKeys(keys []Key, field string) (map[string]crypto.PublicKey, error) {
	m := map[string]crypto.PublicKey{}
	for i, k := range keys {
		pub, err := pubkey.Parse([]byte(k.PEM))
		if err != nil {
			return nil, fmt.Errorf("policy: %s[%d]: %v", field, i, err)
		}
		fp, err := pubkey.Fingerprint(pub)
		if err != nil {
			return nil, err
		}
		if fp != k.ID {
			return nil, fmt.Errorf("policy: %s[%d]: id %s is not the key's fingerprint %s", field, i, k.ID, fp)
		}
		if _, dup := m[fp]; dup {
			return nil, fmt.Errorf("policy: %s lists key %s twice", field, fp)
		}
		m[fp] = pub
	}
	return m, nil
}

// BundleKeys are the trusted bundle keys by ID.
func (t *Trust) BundleKeys() map[string]crypto.PublicKey { return t.bundle }

// PayloadKeys are the trusted payload keys by ID.
func (t *Trust) PayloadKeys() map[string]crypto.PublicKey { return t.payload }

// BoardAllowed reports whether the policy allows releases for board.
func (t *Trust) BoardAllowed(board string) bool {
	for _, b := range t.Boards {
		if b == board {
			return true
		}
	}
	return false
}

// ChannelAllowed checks whether the bundle keys that signed (their IDs)
// may point channel at the release.
func (t *Trust) ChannelAllowed(channel string, signed []string) error {
	rule, ok := t.Channels[channel]
	if !ok {
		names := make([]string, 0, len(t.Channels))
		for n := range t.Channels {
			names = append(names, n)
		}
		sort.Strings(names)
		return failf("the policy allows no channel %q (it allows %v)", channel, names)
	}
	var counted []string
	for _, id := range signed {
		if len(rule.Keys) == 0 || contains(rule.Keys, id) {
			counted = append(counted, id)
		}
	}
	if len(counted) < rule.Threshold {
		keys := rule.Keys
		if len(keys) == 0 {
			keys = slices.Sorted(maps.Keys(t.bundle))
		}
		return failf("channel %s needs %d signatures by its keys (%s), the bundle has %d (%s)", channel, rule.Threshold, t.Labels(keys), len(counted), t.Labels(counted))
	}
	return nil
}

// Labels names keys as Label does, joined with commas ("none" for none).
func (t *Trust) Labels(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.Label(id)
	}
	return strings.Join(out, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// DefaultChannels are the channels a starting policy allows besides
// dev-channel: those a stock Nebraska has (alpha, beta, stable, edge) and
// Flatcar's lts.
var DefaultChannels = []string{"alpha", "beta", "stable", "lts", "edge"}

// NewPolicy makes a starting policy from public keys: every bundle key
// trusted with the given threshold, dev-channel (the everyday target of a
// bastion) open to any one of them, and the DefaultChannels and extra to
// the threshold.
func NewPolicy(bundleKeys, payloadKeys []crypto.PublicKey, threshold int, extra ...string) (*Policy, error) {
	toKeys := func(pubs []crypto.PublicKey) ([]Key, error) {
		var out []Key
		for _, p := range pubs {
			fp, err := pubkey.Fingerprint(p)
			if err != nil {
				return nil, err
			}
			pem, err := pubkey.PEM(p)
			if err != nil {
				return nil, err
			}
			out = append(out, Key{ID: fp, PEM: string(pem)})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out, nil
	}
	bk, err := toKeys(bundleKeys)
	if err != nil {
		return nil, err
	}
	pk, err := toKeys(payloadKeys)
	if err != nil {
		return nil, err
	}
	if threshold == 0 {
		threshold = 1
	}
	p := &Policy{Version: PolicyVersion, BundleKeys: bk, Threshold: threshold, PayloadKeys: pk,
		Boards:   []string{"amd64-usr", "arm64-usr"},
		Channels: map[string]ChannelRule{"dev-channel": {Threshold: 1}}}
	for _, ch := range append(append([]string{}, DefaultChannels...), extra...) {
		if ch == "" || strings.ContainsAny(ch, " \t\r\n") {
			return nil, fmt.Errorf("channel name %q: want a name without spaces", ch)
		}
		p.Channels[ch] = ChannelRule{Threshold: threshold}
	}
	if _, err := NewTrust(*p); err != nil {
		return nil, err
	}
	return p, nil
}
