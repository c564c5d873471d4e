package verify

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/augen-project/augen/internal/testutil"
)

func keys(t *testing.T) (a, b crypto.PublicKey) {
	return testutil.Key(t, "a").Public(), testutil.Key(t, "b").Public()
}

func TestPolicy(t *testing.T) {
	a, b := keys(t)
	p, err := NewPolicy([]crypto.PublicKey{a, b}, []crypto.PublicKey{a}, 2)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(p, "", "  ")
	tr, err := ParsePolicy(bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{p.BundleKeys[0].ID, p.BundleKeys[1].ID}
	if err := tr.ChannelAllowed("dev-channel", ids[:1]); err != nil {
		t.Fatal(err)
	}
	if err := tr.ChannelAllowed("stable", ids[:1]); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "needs 2") {
		t.Fatalf("stable with one key: %v", err)
	}
	if err := tr.ChannelAllowed("stable", ids); err != nil {
		t.Fatal(err)
	}
	if err := tr.ChannelAllowed("nightly", ids); !errors.Is(err, ErrVerification) {
		t.Fatalf("unknown channel: %v", err)
	}
	for _, tc := range []struct{ edit, want string }{
		{`"threshold": 2,`, `"threshold": 3,`},
		{`"version": 1`, `"version": 2`},
		{`"boards"`, `"bords"`},
	} {
		bad := strings.Replace(string(js), tc.edit, tc.want, 1)
		if _, err := ParsePolicy(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted policy with %s", tc.want)
		}
	}
	// A key whose id is not its fingerprint.
	p.BundleKeys[0].ID = strings.Repeat("0", 64)
	if _, err := NewTrust(*p); err == nil || !strings.Contains(err.Error(), "not the key's fingerprint") {
		t.Fatalf("wrong id: %v", err)
	}
}
