//go:build cgo

package signer

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS11Available reports whether this build has the PKCS#11 backend (it
// needs cgo to load the module).
const PKCS11Available = true

// A module is initialized once per process and finalized when its last key
// is closed: a second C_Initialize fails (CKR_CRYPTOKI_ALREADY_INITIALIZED)
// and some modules crash on it.
var modules = struct {
	sync.Mutex
	m map[string]*p11Module
}{m: map[string]*p11Module{}}

type p11Module struct {
	path string
	ctx  *pkcs11.Ctx
	refs int
}

func acquireModule(path string) (*p11Module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("cannot load PKCS#11 module %s", path)
	}
	if err := ctx.Initialize(); err != nil && !isCKR(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("initializing PKCS#11 module %s: %w", path, p11err(err))
	}
	m := &p11Module{path: path, ctx: ctx, refs: 1}
	modules.m[path] = m
	return m, nil
}

func (m *p11Module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs == 0 {
		m.ctx.Finalize()
		m.ctx.Destroy()
		delete(modules.m, m.path)
	}
}

func isCKR(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

// p11err turns a PKCS#11 return value into words a release engineer can act on.
func p11err(err error) error {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return err
	}
	switch uint(e) {
	case pkcs11.CKR_PIN_INCORRECT:
		return fmt.Errorf("wrong PIN (%v)", err)
	case pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("the token's user PIN is locked: too many wrong PINs; the security officer must unlock it (%v)", err)
	case pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return fmt.Errorf("the token's user PIN is not set (%v)", err)
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED:
		return fmt.Errorf("the token is not present (%v)", err)
	}
	return err
}

type p11Token struct {
	slot uint
	info pkcs11.TokenInfo
}

func trim(s string) string { return strings.TrimRight(s, " \x00") }

// tokens lists the present tokens that match the URI's token attributes.
func (r *pkcs11Ref) tokens(m *p11Module) ([]p11Token, error) {
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return nil, p11err(err)
	}
	var out []p11Token
	for _, s := range slots {
		if r.slotID != nil && *r.slotID != s {
			continue
		}
		info, err := m.ctx.GetTokenInfo(s)
		if err != nil || info.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue // an empty slot's token (SoftHSM always has one) holds no key
		}
		if (r.token != "" && trim(info.Label) != r.token) || (r.manufacturer != "" && trim(info.ManufacturerID) != r.manufacturer) ||
			(r.model != "" && trim(info.Model) != r.model) || (r.serial != "" && trim(info.SerialNumber) != r.serial) {
			continue
		}
		out = append(out, p11Token{slot: s, info: info})
	}
	return out, nil
}

func (r *pkcs11Ref) template(class uint) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class)}
	if r.object != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, r.object))
	}
	if r.hasID {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, r.id))
	}
	return t
}

func findObjects(ctx *pkcs11.Ctx, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, p11err(err)
	}
	defer ctx.FindObjectsFinal(sh)
	var all []pkcs11.ObjectHandle
	for {
		objs, _, err := ctx.FindObjects(sh, 64)
		if err != nil {
			return nil, p11err(err)
		}
		if len(objs) == 0 {
			return all, nil
		}
		all = append(all, objs...)
		if len(all) > 1024 {
			return all, nil
		}
	}
}

// pickToken chooses the one token holding the key. With several candidate
// tokens (a URI without token=, like Flatcar's pkcs11:object=10;type=private)
// it looks at public key objects, which need no login, so that a PIN is
// never tried on a token that does not hold the key (each wrong try counts
// towards locking a token).
func (r *pkcs11Ref) pickToken(m *p11Module) (p11Token, error) {
	toks, err := r.tokens(m)
	if err != nil {
		return p11Token{}, err
	}
	switch len(toks) {
	case 0:
		return p11Token{}, fmt.Errorf("no token matches (is the token present, and are token/serial/slot-id right?)")
	case 1:
		return toks[0], nil
	}
	var hits []p11Token
	for _, t := range toks {
		sh, err := m.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			continue
		}
		objs, _ := findObjects(m.ctx, sh, r.template(pkcs11.CKO_PUBLIC_KEY))
		m.ctx.CloseSession(sh)
		if len(objs) > 0 {
			hits = append(hits, t)
		}
	}
	if len(hits) == 1 {
		return hits[0], nil
	}
	var names []string
	for _, t := range toks {
		names = append(names, fmt.Sprintf("token=%s (slot-id=%d)", url.PathEscape(trim(t.info.Label)), t.slot))
	}
	if len(hits) == 0 {
		return p11Token{}, fmt.Errorf("ambiguous: %d tokens match and none shows a matching public key without login; add token= to the URI (%s)", len(toks), strings.Join(names, ", "))
	}
	return p11Token{}, fmt.Errorf("ambiguous: %d tokens hold a matching key; add token= to the URI (%s)", len(hits), strings.Join(names, ", "))
}

// p11Key is an opened private key. Sign uses one session at a time; a
// session that fails is closed and never used again.
type p11Key struct {
	ref   *pkcs11Ref
	mod   *p11Module
	tok   p11Token
	pin   []byte
	obj   pkcs11.ObjectHandle
	pub   *rsa.PublicKey
	mu    sync.Mutex
	sh    pkcs11.SessionHandle
	open  bool
	close sync.Once
}

func openPKCS11(ctx context.Context, uri string, opts *Options) (Signer, error) {
	k, err := openP11Key(uri, opts, false)
	if err != nil {
		return nil, err
	}
	return wrapHardware(k, k.ref.uri, k.pub, k.Close, opts)
}

func openP11Key(uri string, opts *Options, rw bool) (*p11Key, error) {
	ref, err := parsePKCS11(uri)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return uriErr(ref.uri, err) }
	mod, err := acquireModule(ref.module)
	if err != nil {
		return nil, fail(err)
	}
	k := &p11Key{ref: ref, mod: mod}
	tok, err := ref.pickToken(mod)
	if err != nil {
		mod.release()
		return nil, fail(err)
	}
	k.tok = tok
	if tok.info.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0 {
		pin, err := pinSource(ref.attrs, PINEnv, fmt.Sprintf("PIN for token %q", trim(tok.info.Label)), opts)
		if err != nil {
			mod.release()
			return nil, fail(err)
		}
		k.pin = pin
	}
	if err := k.session(); err != nil {
		k.Close()
		return nil, fail(err)
	}
	objs, err := findObjects(mod.ctx, k.sh, ref.template(pkcs11.CKO_PRIVATE_KEY))
	if err != nil {
		k.Close()
		return nil, fail(err)
	}
	switch {
	case len(objs) == 0:
		k.Close()
		return nil, fail(fmt.Errorf("no private key matches in token %q", trim(tok.info.Label)))
	case len(objs) > 1:
		k.Close()
		return nil, fail(fmt.Errorf("ambiguous: %d private keys match in token %q; add object= or id= to the URI", len(objs), trim(tok.info.Label)))
	}
	k.obj = objs[0]
	if k.pub, err = k.rsaPublic(); err != nil {
		k.Close()
		return nil, fail(err)
	}
	return k, nil
}

// session makes sure a logged-in session is open.
func (k *p11Key) session() error {
	if k.open {
		return nil
	}
	sh, err := k.mod.ctx.OpenSession(k.tok.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11err(err)
	}
	if k.pin != nil {
		if err := k.mod.ctx.Login(sh, pkcs11.CKU_USER, string(k.pin)); err != nil && !isCKR(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			k.mod.ctx.CloseSession(sh)
			return p11err(err)
		}
	}
	k.sh, k.open = sh, true
	return nil
}

// drop closes a session that returned an error: it may be mid-operation
// (CKR_OPERATION_ACTIVE) or invalid, and must not be reused.
func (k *p11Key) drop() {
	if k.open {
		k.mod.ctx.CloseSession(k.sh)
		k.open = false
	}
}

func (k *p11Key) rsaPublic() (*rsa.PublicKey, error) {
	kt, err := k.mod.ctx.GetAttributeValue(k.sh, k.obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, fmt.Errorf("reading the key's type: %w", p11err(err))
	}
	if t := new(big.Int).SetBytes(reverseIfLE(kt[0].Value)).Uint64(); t != pkcs11.CKK_RSA {
		return nil, fmt.Errorf("the key is not RSA (CKA_KEY_TYPE %d): update payloads are signed with RSA", t)
	}
	attrs, err := k.mod.ctx.GetAttributeValue(k.sh, k.obj, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the key's public half: %w", p11err(err))
	}
	n := new(big.Int).SetBytes(attrs[0].Value)
	e := new(big.Int).SetBytes(attrs[1].Value)
	if n.Sign() == 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
		return nil, errors.New("the key's public half is unreadable")
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

// reverseIfLE turns a native-endian CK_ULONG into big-endian bytes.
func reverseIfLE(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func (k *p11Key) Public() crypto.PublicKey { return k.pub }

// digestInfoSHA256 prefixes a SHA-256 digest for CKM_RSA_PKCS, which pads
// but does not hash: the same bytes Flatcar's core_sign_update fed its HSM.
var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func (k *p11Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("only SHA-256 PKCS#1 v1.5 signatures are supported")
	}
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, fmt.Errorf("RSA-PSS is not supported: update_engine verifies PKCS#1 v1.5")
	}
	msg := append(append([]byte(nil), digestInfoSHA256...), digest...)
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if err = k.session(); err != nil {
			return nil, err
		}
		var sig []byte
		if err = k.mod.ctx.SignInit(k.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, k.obj); err == nil {
			sig, err = k.mod.ctx.Sign(k.sh, msg)
		}
		if err == nil {
			return sig, nil
		}
		k.drop()
		// Retry once on a fresh session only when the session itself was
		// the problem; a real signing error is reported as it is.
		if !isCKR(err, pkcs11.CKR_SESSION_HANDLE_INVALID) && !isCKR(err, pkcs11.CKR_SESSION_CLOSED) &&
			!isCKR(err, pkcs11.CKR_USER_NOT_LOGGED_IN) && !isCKR(err, pkcs11.CKR_OPERATION_ACTIVE) {
			break
		}
	}
	return nil, p11err(err)
}

func (k *p11Key) Close() error {
	k.close.Do(func() {
		k.mu.Lock()
		k.drop()
		k.mu.Unlock()
		clear(k.pin)
		k.mod.release()
	})
	return nil
}

func generatePKCS11(uri string, bits int, opts *Options) error {
	ref, err := parsePKCS11(uri)
	if err != nil {
		return err
	}
	fail := func(err error) error { return uriErr(ref.uri, err) }
	if ref.object == "" && !ref.hasID {
		return fail(errors.New("name the new key with object= and/or id="))
	}
	mod, err := acquireModule(ref.module)
	if err != nil {
		return fail(err)
	}
	defer mod.release()
	toks, err := ref.tokens(mod)
	if err != nil {
		return fail(err)
	}
	if len(toks) != 1 {
		return fail(fmt.Errorf("%d tokens match: a new key needs exactly one (add token=)", len(toks)))
	}
	k := &p11Key{ref: ref, mod: mod, tok: toks[0]}
	if toks[0].info.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0 {
		if k.pin, err = pinSource(ref.attrs, PINEnv, fmt.Sprintf("PIN for token %q", trim(toks[0].info.Label)), opts); err != nil {
			return fail(err)
		}
	}
	defer clear(k.pin)
	if err := k.session(); err != nil {
		return fail(err)
	}
	defer k.drop()
	if objs, _ := findObjects(mod.ctx, k.sh, ref.template(pkcs11.CKO_PRIVATE_KEY)); len(objs) > 0 {
		return fail(errors.New("a private key with this object/id exists already; refusing to add a second"))
	}
	common := func(class uint) []*pkcs11.Attribute {
		t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA)}
		if ref.object != "" {
			t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, ref.object))
		}
		if ref.hasID {
			t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, ref.id))
		}
		return t
	}
	pubT := append(common(pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	privT := append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false))
	if _, _, err := mod.ctx.GenerateKeyPair(k.sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pubT, privT); err != nil {
		return fail(fmt.Errorf("generating the key: %w", p11err(err)))
	}
	return nil
}

// publicPKCS11 reads the public key object that matches uri in a session
// without login. ok is false when there is none (or more than one).
func publicPKCS11(uri string) (crypto.PublicKey, bool, error) {
	ref, err := parsePKCS11(uri)
	if err != nil {
		return nil, false, err
	}
	mod, err := acquireModule(ref.module)
	if err != nil {
		return nil, false, uriErr(ref.uri, err)
	}
	defer mod.release()
	tok, err := ref.pickToken(mod)
	if err != nil {
		return nil, false, uriErr(ref.uri, err)
	}
	sh, err := mod.ctx.OpenSession(tok.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, false, uriErr(ref.uri, p11err(err))
	}
	defer mod.ctx.CloseSession(sh)
	objs, err := findObjects(mod.ctx, sh, ref.template(pkcs11.CKO_PUBLIC_KEY))
	if err != nil || len(objs) != 1 {
		return nil, false, nil
	}
	k := &p11Key{ref: ref, mod: mod, tok: tok, sh: sh, obj: objs[0]}
	pub, err := k.rsaPublic()
	if err != nil {
		return nil, false, nil
	}
	return pub, true, nil
}

func listPKCS11(uri string, opts *Options) ([]KeyInfo, error) {
	ref, err := parsePKCS11(uri)
	if err != nil {
		return nil, err
	}
	fail := func(err error) error { return uriErr(ref.uri, err) }
	mod, err := acquireModule(ref.module)
	if err != nil {
		return nil, fail(err)
	}
	defer mod.release()
	toks, err := ref.tokens(mod)
	if err != nil {
		return nil, fail(err)
	}
	if len(toks) != 1 {
		return nil, fail(fmt.Errorf("%d tokens match: list one at a time (add token=)", len(toks)))
	}
	k := &p11Key{ref: ref, mod: mod, tok: toks[0]}
	if toks[0].info.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0 {
		if k.pin, err = pinSource(ref.attrs, PINEnv, fmt.Sprintf("PIN for token %q", trim(toks[0].info.Label)), opts); err != nil {
			return nil, fail(err)
		}
	}
	defer clear(k.pin)
	if err := k.session(); err != nil {
		return nil, fail(err)
	}
	defer k.drop()
	objs, err := findObjects(mod.ctx, k.sh, ref.template(pkcs11.CKO_PRIVATE_KEY))
	if err != nil {
		return nil, fail(err)
	}
	var out []KeyInfo
	tokAttr := "token=" + url.PathEscape(trim(toks[0].info.Label))
	for _, o := range objs {
		attrs, err := mod.ctx.GetAttributeValue(k.sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil), pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
		if err != nil {
			continue
		}
		ki := KeyInfo{Label: string(attrs[0].Value), ID: fmt.Sprintf("%x", attrs[1].Value), Type: "private"}
		u := "pkcs11:" + tokAttr
		if ki.Label != "" {
			u += ";object=" + url.PathEscape(ki.Label)
		}
		if len(attrs[1].Value) > 0 {
			u += ";id=" + pctEncode(attrs[1].Value)
		}
		ki.URI = u + ";type=private" + ref.moduleQuery()
		k.obj = o
		if pub, err := k.rsaPublic(); err == nil {
			ki.Type, ki.Bits = "RSA", pub.N.BitLen()
			ki.Fingerprint, _ = fingerprintOf(pub)
		}
		out = append(out, ki)
	}
	return out, nil
}

func pctEncode(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "%%%02x", c)
	}
	return s.String()
}
