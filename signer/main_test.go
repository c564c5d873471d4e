package signer_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

// softhsmDir is this test process's private SoftHSM2 token directory ("" if
// SoftHSM2 is not installed).
var softhsmDir string

func TestMain(m *testing.M) {
	dir, cleanup, err := testutil.SetupSoftHSM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	softhsmDir = dir
	code := m.Run()
	cleanup()
	os.Exit(code)
}
