package signer

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSecretFile bounds a secret file (a PIN, a token, a password).
const MaxSecretFile = 64 << 10

// ReadSecretFile reads a file that holds a secret (a PIN file of
// pin-source=, a --token-file, a store password file) by the rule key files
// follow: a regular file that no other user can read, refused with
// ErrInsecureSecret otherwise (a secret others can read is no secret). One trailing line break is not part of the
// secret. what names the file's use in errors ("pin-source", "token file").
func ReadSecretFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s is not a regular file", what, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s %s has mode %04o: others can read the secret in it (chmod 600 it)", ErrInsecureSecret, what, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > MaxSecretFile {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", what, path, MaxSecretFile)
	}
	return []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")), nil
}

// checkPrivate is the rule for files holding keys and secrets: no group or
// other permission bits.
func checkPrivate(path string, mode os.FileMode) error {
	if mode.Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o: others can read it (chmod 600 it, or keep the key in an HSM or TPM)", ErrInsecure, path, mode.Perm())
	}
	return nil
}
