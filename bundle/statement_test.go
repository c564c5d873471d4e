package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func sampleStatement() *Statement {
	return &Statement{
		Type:          StatementType,
		PredicateType: PredicateTypeRelease,
		Subject: []Subject{{Name: "flatcar_production_update.gz", Digest: map[string]string{
			"sha256": "0b6e78965a5f97a9e2f336abfb4fd15f876e1d4ff3eb7da511c027e346b1f005",
			"sha1":   "9c916c1f6c92a262915fbab092695eb9ba60f98f",
		}}},
		Predicate: Release{
			AppID: FlatcarAppID, Version: "4459.2.1", Board: "amd64-usr",
			Payloads: []PayloadEntry{{
				Name: "flatcar_production_update.gz", Kind: KindFull, Size: 2062437,
				SHA1Base64:   "nJFsH2ySomKRX7qwkmleubpg+Y8=",
				SHA256Base64: "C254llpfl6ni8zar+0/RX4duHU/z632lEcAn40ax8AU=",
				SHA256Hex:    "0b6e78965a5f97a9e2f336abfb4fd15f876e1d4ff3eb7da511c027e346b1f005",
				NewPartition: &Digests{Size: 4194304, SHA256: "f43a1596ab44fb9b7a64fec8cf84a655f011020d37cdc4b819a91a329b3b0949"},
			}},
			PayloadKeys: []string{"5783a7e03b32d98eef74a928ca9c69b11c9c3a832ee9f4717612e2cb64558f00"},
			Augen:       "devel",
		},
	}
}

func TestStatementRoundTrip(t *testing.T) {
	s := sampleStatement()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := p.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("statement does not round-trip byte for byte")
	}
}

func TestStatementRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(s *Statement)
		raw  func(b []byte) []byte
		want string
	}{
		{name: "version", edit: func(s *Statement) { s.Predicate.Version = "4459.2" }, want: "MAJOR.MINOR.PATCH"},
		{name: "board", edit: func(s *Statement) { s.Predicate.Board = "riscv-usr" }, want: "unknown board"},
		{name: "digest mismatch", edit: func(s *Statement) { s.Predicate.Payloads[0].SHA256Hex = strings.Repeat("0", 64) }, want: "Omaha hashes differ"},
		{name: "traversal name", edit: func(s *Statement) { s.Subject[0].Name = "../etc/passwd" }, want: "not a payload file name"},
		{name: "no full", edit: func(s *Statement) { s.Predicate.Payloads[0].Kind = KindExtra }, want: "0 full payloads"},
		{name: "type", edit: func(s *Statement) { s.Type = "https://in-toto.io/Statement/v0.1" }, want: "type"},
		{name: "unknown field", raw: func(b []byte) []byte { return bytes.Replace(b, []byte(`"board"`), []byte(`"colour":"red","board"`), 1) }, want: "unknown field"},
		{name: "trailing data", raw: func(b []byte) []byte { return append(b, []byte(" {}")...) }, want: "data after"},
		{name: "oversize", raw: func(b []byte) []byte { return append(b, bytes.Repeat([]byte(" "), MaxStatementSize)...) }, want: "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sampleStatement()
			if tc.edit != nil {
				tc.edit(s)
			}
			b, _ := json.Marshal(s)
			if tc.raw != nil {
				b = tc.raw(b)
			}
			if _, err := ParseStatement(b); err == nil || !errors.Is(err, ErrStatement) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseStatement(f *testing.F) {
	b, _ := sampleStatement().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatement(b)
		if err != nil {
			return
		}
		if err := s.Check(); err != nil {
			t.Fatal("parsed statement fails its own check")
		}
	})
}

func TestVersionFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"FLATCAR_BUILD=4459\nFLATCAR_BRANCH=2\nFLATCAR_PATCH=1\nFLATCAR_VERSION=4459.2.1\n": "4459.2.1",
		"COREOS_BUILD=2512\nCOREOS_BRANCH=3\nCOREOS_PATCH=0\n":                              "2512.3.0",
		"FLATCAR_BUILD='4459'\nFLATCAR_BRANCH=\"0\"\nFLATCAR_PATCH=0\n":                     "4459.0.0",
	} {
		if got, err := VersionFromFile([]byte(in)); err != nil || got != want {
			t.Errorf("%q: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "FLATCAR_BUILD=4459\n", "FLATCAR_BUILD=x\nFLATCAR_BRANCH=1\nFLATCAR_PATCH=1\n"} {
		if _, err := VersionFromFile([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"4459.2.1", "4459.10.0", true}, {"4459.2.1", "4459.2.1", false}, {"5000.0.0", "4459.2.1", false},
		{"1.2", "1.2.0", false}, {"4459.2.1", "garbage", false}, {"garbage", "4459.2.1", false}, {"4459.2.1-rc1", "4459.2.2", true}} {
		if VersionLess(c.a, c.b) != c.less {
			t.Errorf("VersionLess(%s, %s) != %v", c.a, c.b, c.less)
		}
	}
}
