//go:build cgo

package signer

import (
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// SoftHSM2 never locks a PIN, so the words for a locked token are checked
// here against the return values a real HSM gives.
func TestPKCS11ErrorWords(t *testing.T) {
	for code, want := range map[uint]string{
		pkcs11.CKR_PIN_INCORRECT:            "wrong PIN",
		pkcs11.CKR_PIN_LOCKED:               "PIN is locked",
		pkcs11.CKR_USER_PIN_NOT_INITIALIZED: "PIN is not set",
		pkcs11.CKR_TOKEN_NOT_PRESENT:        "not present",
	} {
		if got := p11err(pkcs11.Error(code)).Error(); !strings.Contains(got, want) {
			t.Errorf("0x%x: %q, want %q", code, got, want)
		}
	}
}
