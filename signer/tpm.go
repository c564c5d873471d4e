package signer

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"
)

// TPM key URIs:
//
//	tpm:handle=0x81000010            a key persisted at that handle
//	tpm:key=/path/update.tpmkey      a key file made by augen (TSS2 PEM)
//
// with optional attributes device=/dev/tpmrm0 (the default; unix:/path for
// swtpm's socket) and pin-source=file:PATH for the key's auth value (also
// read from AUGEN_TPM_PIN; a key file records whether it has one).
const (
	TPMPINEnv        = "AUGEN_TPM_PIN"
	DefaultTPMDevice = "/dev/tpmrm0"
)

var tpmKeys = []string{"handle", "key", "device", "pin-source", "pin-value"}

type tpmRef struct {
	uri    string
	attrs  *attrs
	device string
	handle tpm2.TPMHandle
	key    string
}

func parseTPM(uri string) (*tpmRef, error) {
	a, err := parseAttrs(uri, tpmKeys, nil)
	if err != nil {
		return nil, err
	}
	// PIN attributes live in the path of a tpm: URI; pinSource reads query.
	for _, k := range []string{"pin-source", "pin-value"} {
		if v, ok := a.path[k]; ok {
			a.query[k] = v
		}
	}
	r := &tpmRef{uri: Redact(uri), attrs: a, device: DefaultTPMDevice, key: a.path["key"]}
	if d, ok := a.path["device"]; ok {
		r.device = d
	}
	h, hasHandle := a.path["handle"]
	if hasHandle == (r.key != "") {
		return nil, fmt.Errorf("%w %q: give exactly one of handle=0x81… or key=PATH", ErrUnsupported, r.uri)
	}
	if hasHandle {
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(h), "0x"), 16, 32)
		if err != nil || n>>24 != 0x81 {
			return nil, fmt.Errorf("%w %q: handle %q is not a persistent handle (0x81000000–0x81ffffff)", ErrUnsupported, r.uri, h)
		}
		r.handle = tpm2.TPMHandle(n)
	}
	return r, nil
}

// openTPMDevice opens the TPM named by device: a character device (the
// kernel's resource manager /dev/tpmrm0 flushes what a crashed run leaves)
// or "unix:PATH", swtpm's socket.
func openTPMDevice(device string) (transport.TPMCloser, error) {
	if p, ok := strings.CutPrefix(device, "unix:"); ok {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("TPM not reachable: %w", err)
		}
		return linuxudstpm.Open(p)
	}
	t, err := linuxtpm.Open(device)
	if err != nil {
		return nil, fmt.Errorf("TPM not reachable: %w", err)
	}
	return t, nil
}

// tpmConn opens the URI's device, or uses opts.TPM.
func tpmConn(r *tpmRef, opts *Options) (transport.TPM, func(), error) {
	if opts != nil && opts.TPM != nil {
		return opts.TPM, func() {}, nil
	}
	t, err := openTPMDevice(r.device)
	if err != nil {
		return nil, nil, err
	}
	return t, func() { t.Close() }, nil
}

// tpmKey is a loaded TPM key. A key from a file stays loaded as a transient
// object until Close (swtpm has only three transient slots: every handle is
// flushed).
type tpmKey struct {
	ref       *tpmRef
	tpm       transport.TPM
	closeTPM  func()
	handle    tpm2.TPMHandle
	name      tpm2.TPM2BName
	transient bool
	auth      []byte
	pub       *rsa.PublicKey
	mu        sync.Mutex
	once      sync.Once
}

func openTPM(ctx context.Context, uri string, opts *Options) (Signer, error) {
	k, err := openTPMKey(uri, opts)
	if err != nil {
		return nil, err
	}
	return wrapHardware(k, k.ref.uri, k.pub, k.Close, opts)
}

func openTPMKey(uri string, opts *Options) (*tpmKey, error) {
	r, err := parseTPM(uri)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return uriErr(r.uri, err) }
	t, closeT, err := tpmConn(r, opts)
	if err != nil {
		return nil, fail(err)
	}
	k := &tpmKey{ref: r, tpm: t, closeTPM: closeT}
	needAuth := true
	var public *tpm2.TPMTPublic
	if r.key != "" {
		kf, err := readTPMKeyFile(r.key)
		if err != nil {
			closeT()
			return nil, fail(err)
		}
		needAuth = !kf.EmptyAuth
		if public, err = k.loadFile(kf); err != nil {
			k.Close()
			return nil, fail(err)
		}
	} else {
		rp, err := tpm2.ReadPublic{ObjectHandle: r.handle}.Execute(t)
		if err != nil {
			closeT()
			return nil, fail(tpmErr(err))
		}
		k.handle, k.name = r.handle, rp.Name
		if public, err = rp.OutPublic.Contents(); err != nil {
			closeT()
			return nil, fail(err)
		}
	}
	if k.pub, err = signingPublic(public); err != nil {
		k.Close()
		return nil, fail(err)
	}
	_, hasSrc := r.attrs.query["pin-source"]
	_, hasVal := r.attrs.query["pin-value"]
	_, hasEnv := os.LookupEnv(TPMPINEnv)
	if hasSrc || hasVal || hasEnv || (needAuth && r.key != "") {
		if k.auth, err = pinSource(r.attrs, TPMPINEnv, "auth value for TPM key "+r.uri, opts); err != nil {
			k.Close()
			return nil, fail(err)
		}
	}
	if opts.RequireAuth && (!needAuth || len(k.auth) == 0) {
		k.Close()
		why := "its key file records none"
		if r.key == "" {
			why = "none was given (pin-source= or " + TPMPINEnv + ")"
		}
		return nil, fail(fmt.Errorf("%w: %s; anyone who can copy the key and reach the TPM can sign with it, so --official refuses it (make one with an auth value: augen key generate)", ErrNoAuth, why))
	}
	return k, nil
}

// srk creates the storage root key under the owner hierarchy from the TCG
// ECC P-256 template. It is deterministic for a given TPM, so it need not be
// persisted.
func createSRK(t transport.TPM) (*tpm2.CreatePrimaryResponse, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(tpm2.ECCSRKTemplate)}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("creating the storage root key: %w", tpmErr(err))
	}
	return rsp, nil
}

func flush(t transport.TPM, h tpm2.TPMHandle) { tpm2.FlushContext{FlushHandle: h}.Execute(t) }

func (k *tpmKey) loadFile(kf *tss2Key) (*tpm2.TPMTPublic, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](kf.Pubkey)
	if err != nil {
		return nil, fmt.Errorf("key file: bad public area: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](kf.Privkey)
	if err != nil {
		return nil, fmt.Errorf("key file: bad private area: %w", err)
	}
	srk, err := createSRK(k.tpm)
	if err != nil {
		return nil, err
	}
	defer flush(k.tpm, srk.ObjectHandle)
	ld, err := tpm2.Load{ParentHandle: tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}, InPublic: *pub, InPrivate: *priv}.Execute(k.tpm)
	if err != nil {
		return nil, fmt.Errorf("loading the key (made for another TPM?): %w", tpmErr(err))
	}
	k.handle, k.name, k.transient = ld.ObjectHandle, ld.Name, true
	return pub.Contents()
}

// signingPublic checks that a TPM key can only make the signatures
// update_engine verifies (RSASSA with SHA-256: the TPM then refuses any
// other scheme) and returns its public key.
func signingPublic(p *tpm2.TPMTPublic) (*rsa.PublicKey, error) {
	if p.Type != tpm2.TPMAlgRSA {
		return nil, fmt.Errorf("the key is not RSA (TPM algorithm 0x%x): update payloads are signed with RSA", uint16(p.Type))
	}
	a := p.ObjectAttributes
	if !a.SignEncrypt || a.Restricted || a.Decrypt {
		return nil, errors.New("the key is not an unrestricted signing-only key")
	}
	d, err := p.Parameters.RSADetail()
	if err != nil {
		return nil, err
	}
	if d.Scheme.Scheme != tpm2.TPMAlgRSASSA {
		return nil, errors.New("the key's scheme is not pinned to RSASSA (PKCS#1 v1.5)")
	}
	if s, err := d.Scheme.Details.RSASSA(); err != nil || s.HashAlg != tpm2.TPMAlgSHA256 {
		return nil, errors.New("the key's scheme is not pinned to SHA-256")
	}
	pub, err := tpm2.Pub(*p)
	if err != nil {
		return nil, err
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("unexpected %T public key", pub)
	}
	return rk, nil
}

func (k *tpmKey) Public() crypto.PublicKey { return k.pub }

func (k *tpmKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 {
		return nil, errors.New("only SHA-256 PKCS#1 v1.5 signatures are supported")
	}
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, errors.New("RSA-PSS is not supported: update_engine verifies PKCS#1 v1.5")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	rsp, err := tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(k.auth)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgRSASSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}.Execute(k.tpm)
	if err != nil {
		return nil, tpmErr(err)
	}
	sig, err := rsp.Signature.Signature.RSASSA()
	if err != nil {
		return nil, err
	}
	return sig.Sig.Buffer, nil
}

func (k *tpmKey) Close() error {
	k.once.Do(func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.transient {
			flush(k.tpm, k.handle)
		}
		clear(k.auth)
		k.closeTPM()
	})
	return nil
}

// tpmErr words the TPM's answers a release engineer meets.
func tpmErr(err error) error {
	var te tpm2.TPMRC
	if errors.As(err, &te) {
		switch {
		case te == tpm2.TPMRCHandle || strings.Contains(err.Error(), "TPM_RC_HANDLE"):
			return fmt.Errorf("no key at that handle (%v)", err)
		}
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "TPM_RC_AUTH_FAIL") || strings.Contains(s, "TPM_RC_BAD_AUTH"):
		return fmt.Errorf("wrong auth value for the key (%v)", err)
	case strings.Contains(s, "TPM_RC_LOCKOUT"):
		return fmt.Errorf("the TPM is in dictionary-attack lockout (%v)", err)
	case strings.Contains(s, "TPM_RC_HANDLE"):
		return fmt.Errorf("no key at that handle (%v)", err)
	case strings.Contains(s, "connect:") || strings.Contains(s, "no such file"):
		return fmt.Errorf("TPM not reachable (%v)", err)
	}
	return err
}

// tss2Key is the TSS2 key file format ("-----BEGIN TSS2 PRIVATE KEY-----",
// as tpm2-openssl and the Linux kernel's trusted keys write it): a loadable
// key under the owner hierarchy's storage root key.
type tss2Key struct {
	Type      asn1.ObjectIdentifier
	EmptyAuth bool `asn1:"optional,explicit,tag:0"`
	Parent    int
	Pubkey    []byte
	Privkey   []byte
}

var oidLoadableKey = asn1.ObjectIdentifier{2, 23, 133, 10, 1, 3}

const tss2PEMType = "TSS2 PRIVATE KEY"

func readTPMKeyFile(path string) (*tss2Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if st.Size() > 64<<10 {
		return nil, fmt.Errorf("key file %s is too large", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != tss2PEMType {
		return nil, fmt.Errorf("key file %s is not a %q PEM file", path, tss2PEMType)
	}
	var k tss2Key
	rest, err := asn1.Unmarshal(blk.Bytes, &k)
	if err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("key file %s: malformed TSS2 key", path)
	}
	if !k.Type.Equal(oidLoadableKey) || k.Parent != int(tpm2.TPMRHOwner) {
		return nil, fmt.Errorf("key file %s: only loadable keys under the owner hierarchy are supported", path)
	}
	return &k, nil
}

func encodeTPMKeyFile(pub tpm2.TPM2BPublic, priv tpm2.TPM2BPrivate, emptyAuth bool) ([]byte, error) {
	der, err := asn1.Marshal(tss2Key{Type: oidLoadableKey, EmptyAuth: emptyAuth, Parent: int(tpm2.TPMRHOwner), Pubkey: tpm2.Marshal(pub), Privkey: tpm2.Marshal(priv)})
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: tss2PEMType, Bytes: der}), nil
}

// rsaSigningTemplate is the public area of every key augen makes or
// imports: RSA, signing only, scheme pinned to RSASSA-SHA256.
func rsaSigningTemplate(bits int, n *big.Int, e int, inTPM, noDA bool) tpm2.TPMTPublic {
	unique := make([]byte, bits/8)
	if n != nil {
		unique = n.Bytes()
	}
	exp := uint32(0) // 0 means 65537
	if e != 65537 && e != 0 {
		exp = uint32(e)
	}
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgRSA,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            inTPM,
			FixedParent:         inTPM,
			SensitiveDataOrigin: inTPM,
			UserWithAuth:        true,
			SignEncrypt:         true,
			NoDA:                noDA,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Scheme: tpm2.TPMTRSAScheme{
				Scheme:  tpm2.TPMAlgRSASSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			KeyBits:  tpm2.TPMKeyBits(bits),
			Exponent: exp,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: unique}),
	}
}
