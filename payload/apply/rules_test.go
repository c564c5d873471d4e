package apply_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every rule augen refuses a payload by, though the client would apply
// it, is listed in doc/payload-format.md §3.4 (the Omaha reading's
// "omaha-" rules in doc/push.md): a refusal that is stricter than the
// client must say so in doc/.
func TestStricterRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../doc/payload-format.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	if i := strings.Index(sec, "### 3.4"); i >= 0 {
		sec = sec[i:]
		if j := strings.Index(sec[4:], "\n### "); j >= 0 {
			sec = sec[:j+4]
		}
	} else {
		t.Fatal("no §3.4 in doc/payload-format.md")
	}
	pushDoc, err := os.ReadFile("../../doc/push.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?:Stricter|stricterf|stricter)\((?:op, )?"([a-z0-9-]*[a-z0-9])"`)
	found := map[string]bool{"bzip2-control": true, "bzip2-diff": true, "bzip2-extra": true} // streamErr's "bzip2-"+name
	err = filepath.Walk("../..", func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() && (info.Name() == "testdata" || strings.HasPrefix(info.Name(), ".")) && p != "../.." {
			if info != nil && info.IsDir() {
				return filepath.SkipDir
			}
			return err
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			found[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) < 20 {
		t.Fatalf("only %d rules found in the code", len(found))
	}
	for r := range found {
		if strings.HasPrefix(r, "omaha-") {
			if !strings.Contains(string(pushDoc), "`"+r+"`") {
				t.Errorf("rule %s is not listed in doc/push.md", r)
			}
		} else if !strings.Contains(sec, "`"+r+"`") {
			t.Errorf("rule %s is not listed in doc/payload-format.md §3.4", r)
		}
	}
}
