package push

import (
	"strings"
	"testing"

	"github.com/augen-project/augen/bundle"
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

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{{"4459.2.1", "4459.10.0", true}, {"4459.2.1", "4459.2.1", false}, {"5000.0.0", "4459.2.1", false}, {"1.2", "1.2.0", true}} {
		if versionLess(c.a, c.b) != c.less {
			t.Errorf("versionLess(%s, %s) != %v", c.a, c.b, c.less)
		}
	}
}
