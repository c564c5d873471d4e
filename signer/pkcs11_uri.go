package signer

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// pkcs11Ref is a parsed pkcs11: URI.
type pkcs11Ref struct {
	uri    string // redacted, for messages
	attrs  *attrs
	module string // resolved module path
	// Token filters; empty means any.
	token, manufacturer, model, serial string
	slotID                             *uint
	// Object filters.
	object string
	id     []byte
	hasID  bool
}

var (
	pkcs11PathKeys  = []string{"token", "manufacturer", "model", "serial", "slot-id", "object", "id", "type", "library-manufacturer", "library-description", "library-version", "slot-description", "slot-manufacturer"}
	pkcs11QueryKeys = []string{"module-path", "module-name", "pin-source", "pin-value"}
)

// ModuleEnv names the PKCS#11 module when the URI does not.
const ModuleEnv = "AUGEN_PKCS11_MODULE"

// PINEnv holds the token PIN when the URI has no pin-source.
const PINEnv = "AUGEN_PKCS11_PIN"

// defaultModules are tried, in order, when neither the URI nor
// AUGEN_PKCS11_MODULE names a module.
var defaultModules = []string{
	"/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
	"/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
	"/usr/lib/softhsm/libsofthsm2.so",
}

var moduleDirs = []string{"/usr/lib/x86_64-linux-gnu/pkcs11", "/usr/lib/aarch64-linux-gnu/pkcs11", "/usr/lib/pkcs11", "/usr/lib/x86_64-linux-gnu", "/usr/lib/softhsm", "/usr/lib"}

func parsePKCS11(uri string) (*pkcs11Ref, error) {
	a, err := parseAttrs(uri, pkcs11PathKeys, pkcs11QueryKeys)
	if err != nil {
		return nil, err
	}
	r := &pkcs11Ref{uri: Redact(uri), attrs: a}
	r.token, r.manufacturer, r.model, r.serial = a.path["token"], a.path["manufacturer"], a.path["model"], a.path["serial"]
	r.object = a.path["object"]
	if id, ok := a.path["id"]; ok {
		r.id, r.hasID = []byte(id), true
	}
	if t, ok := a.path["type"]; ok && t != "private" {
		return nil, fmt.Errorf("%w %q: type=%s: signing needs type=private", ErrUnsupported, r.uri, t)
	}
	if s, ok := a.path["slot-id"]; ok {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w %q: slot-id %q is not a number", ErrUnsupported, r.uri, s)
		}
		v := uint(n)
		r.slotID = &v
	}
	if r.module, err = resolveModule(a); err != nil {
		return nil, uriErr(r.uri, err)
	}
	return r, nil
}

func resolveModule(a *attrs) (string, error) {
	if p, ok := a.query["module-path"]; ok {
		return checkModule(p)
	}
	if name, ok := a.query["module-name"]; ok {
		for _, d := range moduleDirs {
			for _, cand := range []string{name, name + ".so", "lib" + name + ".so"} {
				if p, err := checkModule(filepath.Join(d, cand)); err == nil {
					return p, nil
				}
			}
		}
		return "", fmt.Errorf("PKCS#11 module %q not found in %v", name, moduleDirs)
	}
	if p := os.Getenv(ModuleEnv); p != "" {
		return checkModule(p)
	}
	for _, p := range defaultModules {
		if m, err := checkModule(p); err == nil {
			return m, nil
		}
	}
	return "", fmt.Errorf("no PKCS#11 module: name one with module-path=… in the URI or %s", ModuleEnv)
}

func checkModule(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("PKCS#11 module path %q is not absolute", p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("PKCS#11 module: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("PKCS#11 module %s is not a regular file", p)
	}
	return filepath.EvalSymlinks(p)
}

// moduleQuery is the URI query naming the module the key was found with,
// so that a URI key list prints works as it is, whatever named the module
// (the URI, $AUGEN_PKCS11_MODULE or p11-kit's proxy).
func (r *pkcs11Ref) moduleQuery() string {
	if r.module == "" {
		return ""
	}
	return "?module-path=" + r.module
}
