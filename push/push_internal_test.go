package push

import (
	"strings"
	"testing"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/nebraska"
)

// The package registered carries each hash in the encoding its reader
// expects: SHA-1 base64 as hash, SHA-256 base64 on the action, SHA-256 hex
// for extra files.
func TestPackageConfigEncodings(t *testing.T) {
	full := file{entry: bundle.PayloadEntry{Name: "flatcar_production_update.gz", Kind: bundle.KindFull, Size: 10, SHA1Base64: "s1", SHA256Base64: "s256b64", SHA256Hex: "aa"}, key: "amd64-usr/1.2.3/flatcar_production_update.gz"}
	extra := file{entry: bundle.PayloadEntry{Name: "oem-azure.gz", Kind: bundle.KindExtra, Size: 3, SHA1Base64: "e1", SHA256Base64: "e256b64", SHA256Hex: "e256hex"}}
	delta := file{entry: bundle.PayloadEntry{Name: "delta-from-1.2.2.gz", Kind: bundle.KindDelta, Size: 4}}
	cfg := packageConfig(nebraska.FlatcarAppID, 1, "1.2.3", "https://u.example/base", []file{full, delta, extra}, &full)
	if cfg.URL != "https://u.example/base/amd64-usr/1.2.3/" || cfg.Filename != full.entry.Name || cfg.Size != "10" || cfg.Hash != "s1" ||
		cfg.FlatcarAction.SHA256 != "s256b64" || cfg.Type != 1 || cfg.ChannelsBlacklist == nil {
		t.Fatalf("%+v", cfg)
	}
	if len(cfg.ExtraFiles) != 1 || cfg.ExtraFiles[0] != (nebraska.ExtraFileConf{Name: "oem-azure.gz", Size: "3", Hash: "e1", Hash256: "e256hex"}) {
		t.Fatalf("extra files %+v", cfg.ExtraFiles)
	}
}

func TestDifferences(t *testing.T) {
	want := nebraska.PackageConfig{Type: 1, URL: "u/", Filename: "f", Size: "10", Hash: "h", FlatcarAction: &nebraska.FlatcarActionConf{SHA256: "s"},
		ExtraFiles: []nebraska.ExtraFileConf{{Name: "oem-a.gz", Size: "1", Hash: "a", Hash256: "aa"}}}
	same := &nebraska.Package{Type: 1, URL: "u/", Filename: "f", Size: "10", Hash: "h", FlatcarAction: &nebraska.FlatcarAction{SHA256: "s"},
		ExtraFiles: []nebraska.ExtraFile{{Name: "oem-a.gz", Size: "1", Hash: "a", Hash256: "aa"}}}
	if d := differences(same, want); len(d) != 0 {
		t.Fatalf("identical package differs: %v", d)
	}
	other := *same
	other.FlatcarAction = nil
	other.Size = "11"
	other.ExtraFiles = []nebraska.ExtraFile{{Name: "oem-b.gz"}}
	d := strings.Join(differences(&other, want), "\n")
	for _, w := range []string{`size is "11"`, "flatcar_action.sha256", "oem-a.gz is missing", "oem-b.gz is not in the bundle"} {
		if !strings.Contains(d, w) {
			t.Errorf("no %q in:\n%s", w, d)
		}
	}
}

// A release that requires version V is refused unless a floor lies in
// [V, release): any machine below V would otherwise reach it directly.
func TestCheckRequiredVersion(t *testing.T) {
	st := bundle.Release{Version: "4459.3.0", RequiresVersion: "4459.2.0"}
	fl := func(vs ...string) []nebraska.Package {
		var out []nebraska.Package
		for _, v := range vs {
			out = append(out, nebraska.Package{Version: v})
		}
		return out
	}
	for _, c := range []struct {
		floors []nebraska.Package
		ok     bool
	}{
		{nil, false},
		{fl("4459.1.0"), false},
		{fl("4459.2.0"), true},
		{fl("4459.1.0", "4459.2.1"), true},
		{fl("4459.3.0"), false}, // the release itself is no way around it
		{fl("4459.4.0"), false}, // above the release: offered to nobody before it
	} {
		err := checkRequiredVersion(st, "dev-channel", c.floors)
		if (err == nil) != c.ok {
			t.Errorf("floors %v: %v", c.floors, err)
		}
	}
	if err := checkRequiredVersion(bundle.Release{Version: "1.0.0"}, "x", nil); err != nil {
		t.Errorf("no requirement: %v", err)
	}
}

// What the client reads is what is compared: every URL it may try, the
// size as it parses it, the first postinstall sha256.
func TestOfferDiffers(t *testing.T) {
	w := wanted{version: "1.0.0", url: "http://s/a/p.gz", size: 25998, sha1: "h", sha256: "s", extra: map[string][3]string{"oem.gz": {"eh", "ehex", "3"}}}
	good := func() *omaha.Offer {
		return &omaha.Offer{Version: "1.0.0", URLs: []string{"http://s/a/"}, Name: "p.gz", SizeAttr: "25998", Size: 25998, SHA1: "h", SHA256: "s",
			Extra: []omaha.Package{{Name: "oem.gz", Hash: "eh", HashSHA256: "ehex", Size: "3"}}}
	}
	if d := offerDiffers(good(), w); len(d) != 0 {
		t.Fatalf("as pushed: %v", d)
	}
	for name, mod := range map[string]func(*omaha.Offer){
		"octal size":      func(o *omaha.Offer) { o.SizeAttr, o.Size = "025998", 21 },
		"second url":      func(o *omaha.Offer) { o.URLs = append(o.URLs, "http://evil/") },
		"other sha256":    func(o *omaha.Offer) { o.SHA256 = "t" },
		"missing extra":   func(o *omaha.Offer) { o.Extra = nil },
		"extra twice":     func(o *omaha.Offer) { o.Extra = append(o.Extra, o.Extra[0]) },
		"foreign extra":   func(o *omaha.Offer) { o.Extra = append(o.Extra, omaha.Package{Name: "x.gz"}) },
		"another version": func(o *omaha.Offer) { o.Version = "0.9.0" },
	} {
		o := good()
		mod(o)
		if d := offerDiffers(o, w); len(d) == 0 {
			t.Errorf("%s: not noticed", name)
		}
	}
}

// One machine id per (track, version), of the probe's prefix.
func TestProbeMachineID(t *testing.T) {
	a, b := ProbeMachineID("dev-channel", "0.0.0"), ProbeMachineID("dev-channel", "4459.1.0")
	if a == b || len(a) != 32 || !strings.HasPrefix(a, "a09e0000") || a != ProbeMachineID("dev-channel", "0.0.0") || a == ProbeMachineID("beta", "0.0.0") {
		t.Fatalf("%s %s", a, b)
	}
}
