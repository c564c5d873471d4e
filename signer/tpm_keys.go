package signer

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"os"

	"github.com/google/go-tpm/tpm2"
)

// generateTPM creates (key == nil) or imports an RSA signing key under the
// SRK and stores it where the URI says.
func generateTPM(uri string, bits int, key *rsa.PrivateKey, opts *Options) error {
	r, err := parseTPM(uri)
	if err != nil {
		return err
	}
	fail := func(err error) error { return fmt.Errorf("signer: %s: %w", r.uri, err) }
	if r.key != "" {
		if _, err := os.Stat(r.key); err == nil {
			return fail(fmt.Errorf("key file %s exists; refusing to overwrite a key", r.key))
		}
	}
	var auth []byte
	_, hasSrc := r.attrs.query["pin-source"]
	_, hasVal := r.attrs.query["pin-value"]
	_, env := os.LookupEnv(TPMPINEnv)
	switch {
	case hasSrc || hasVal || env:
		if auth, err = pinSource(r.attrs, TPMPINEnv, "", opts); err != nil {
			return fail(err)
		}
	case !opts.NoAuth:
		if auth, err = promptTwice("auth value for the new TPM key", TPMPINEnv); err != nil {
			return fail(err)
		}
	}
	if len(auth) == 0 && !opts.NoAuth {
		return fail(fmt.Errorf("%w: an empty auth value was given; a key without one can be used by anyone who can copy it and reach the TPM (--no-auth makes one anyway)", ErrNoAuth))
	}
	if len(auth) > 0 && opts.NoAuth {
		return fail(fmt.Errorf("--no-auth, but an auth value was given (pin-source=, pin-value= or %s)", TPMPINEnv))
	}
	t, closeT, err := tpmConn(r, opts)
	if err != nil {
		return fail(err)
	}
	defer closeT()
	if r.key == "" {
		if _, err := (tpm2.ReadPublic{ObjectHandle: r.handle}).Execute(t); err == nil {
			return fail(fmt.Errorf("handle 0x%x is in use; refusing to replace a key", uint32(r.handle)))
		}
	}
	srk, err := createSRK(t)
	if err != nil {
		return fail(err)
	}
	defer flush(t, srk.ObjectHandle)
	parent := tpm2.NamedHandle{Handle: srk.ObjectHandle, Name: srk.Name}
	// Keys with an auth value keep dictionary-attack protection; keys
	// without one gain nothing from it.
	noDA := len(auth) == 0
	var pub tpm2.TPM2BPublic
	var priv tpm2.TPM2BPrivate
	if key == nil {
		tmpl := rsaSigningTemplate(bits, nil, 0, true, noDA)
		rsp, err := tpm2.Create{
			ParentHandle: parent,
			InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: auth}}},
			InPublic:     tpm2.New2B(tmpl),
		}.Execute(t)
		if err != nil {
			return fail(fmt.Errorf("creating the key: %w", tpmErr(err)))
		}
		pub, priv = rsp.OutPublic, rsp.OutPrivate
	} else {
		if len(key.Primes) != 2 {
			return fail(fmt.Errorf("multi-prime RSA keys cannot be imported"))
		}
		tmpl := rsaSigningTemplate(bits, key.N, key.E, false, noDA)
		srkPub, err := srk.OutPublic.Contents()
		if err != nil {
			return fail(err)
		}
		ek, err := tpm2.ImportEncapsulationKey(srkPub)
		if err != nil {
			return fail(err)
		}
		name, err := tpm2.ObjectName(&tmpl)
		if err != nil {
			return fail(err)
		}
		sensitive := tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgRSA,
			AuthValue:     tpm2.TPM2BAuth{Buffer: auth},
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgRSA, &tpm2.TPM2BPrivateKeyRSA{Buffer: key.Primes[0].Bytes()}),
		}
		dup, seed, err := tpm2.CreateDuplicate(rand.Reader, ek, name.Buffer, tpm2.Marshal(sensitive))
		if err != nil {
			return fail(err)
		}
		rsp, err := tpm2.Import{
			ParentHandle: parent,
			ObjectPublic: tpm2.New2B(tmpl),
			Duplicate:    tpm2.TPM2BPrivate{Buffer: dup},
			InSymSeed:    tpm2.TPM2BEncryptedSecret{Buffer: seed},
		}.Execute(t)
		if err != nil {
			return fail(fmt.Errorf("importing the key: %w", tpmErr(err)))
		}
		pub, priv = tpm2.New2B(tmpl), rsp.OutPrivate
	}
	if r.key != "" {
		b, err := encodeTPMKeyFile(pub, priv, len(auth) == 0)
		if err != nil {
			return fail(err)
		}
		f, err := os.OpenFile(r.key, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			os.Remove(r.key)
			return fail(err)
		}
		return f.Close()
	}
	ld, err := tpm2.Load{ParentHandle: parent, InPublic: pub, InPrivate: priv}.Execute(t)
	if err != nil {
		return fail(fmt.Errorf("loading the key: %w", tpmErr(err)))
	}
	defer flush(t, ld.ObjectHandle)
	if _, err := (tpm2.EvictControl{
		Auth:             tpm2.TPMRHOwner,
		ObjectHandle:     tpm2.NamedHandle{Handle: ld.ObjectHandle, Name: ld.Name},
		PersistentHandle: r.handle,
	}).Execute(t); err != nil {
		return fail(fmt.Errorf("persisting the key at 0x%x: %w", uint32(r.handle), tpmErr(err)))
	}
	return nil
}
