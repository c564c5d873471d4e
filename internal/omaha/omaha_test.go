package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/augen-project/augen"
)

// The response recorded from a real Nebraska server (exchange 10).
func TestReadRecorded(t *testing.T) {
	f, err := os.Open("../../nebraska/nebraskatest/testdata/transcripts/10-omaha.body")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if o.Version != "9999.1.0" || o.URL() != "http://127.0.0.1:18000/flatcar/flatcar_test_update.gz" || o.Size != 3000000 ||
		o.SHA1 != "HLjLKI5kPrZ+P/Zf1YS1LAM+/po=" || o.SHA256 != "pZiGxk/qGI76YWdO5DrzMKV33BKfQqp1Frr3d2hArk4=" || len(o.URLs) != 1 {
		t.Fatalf("offer %+v", o)
	}
	if len(o.Extra) != 1 || o.Extra[0].Name != "oem-azure.gz" || o.Extra[0].HashSHA256 != "937493d0d55de4a2c48014c2b65af8b7a69288e4a786350f9b8c7ed08567f2a9" || o.Extra[0].Required != "false" {
		t.Fatalf("extra %+v", o.Extra)
	}
}

// answer is a Nebraska-shaped answer for app a with the given parts.
func answer(app, urls, pkgs, actions string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart>` + app +
		`<app appid="{a}" status="ok"><updatecheck status="ok"><urls>` + urls + `</urls><manifest version="2.0.0"><packages>` + pkgs +
		`</packages><actions>` + actions + `</actions></manifest></updatecheck></app></response>`
}

const (
	url1 = `<url codebase="http://good/"></url>`
	pkg1 = `<package name="p.gz" hash="c2hhMQ==" size="25998" required="true"></package>`
	act1 = `<action event="postinstall" sha256="R09PRA==" DisablePayloadBackoff="true"></action>`
)

// Each of update_engine's reading rules (omaha_request_action.cc), with the
// answer that tells a careless reader from the client.
func TestReadLikeTheClient(t *testing.T) {
	for _, c := range []struct {
		name, body string
		check      func(*Offer) bool
	}{
		{"plain", answer("", url1, pkg1, act1), func(o *Offer) bool {
			return o.URL() == "http://good/p.gz" && o.Size == 25998 && o.SHA256 == "R09PRA==" && o.Version == "2.0.0"
		}},
		// The first postinstall action counts, not the last.
		{"two postinstall actions", answer("", url1, pkg1, act1+`<action event="postinstall" sha256="TEFTVA=="></action>`), func(o *Offer) bool { return o.SHA256 == "R09PRA==" }},
		// Actions of other events are passed over.
		{"postinstall second", answer("", url1, pkg1, `<action event="update" sha256="WA=="></action>`+act1), func(o *Offer) bool { return o.SHA256 == "R09PRA==" }},
		// The client never looks at app ids: an earlier app's updatecheck,
		// urls and package are the ones it reads.
		{"earlier app", answer(`<app appid="{other}" status="ok"><updatecheck status="ok"><urls><url codebase="http://evil/"></url></urls><manifest version="6.6.6"><packages><package name="x.gz" size="7"></package></packages></manifest></updatecheck></app>`, url1, pkg1, act1),
			func(o *Offer) bool {
				return o.URL() == "http://evil/x.gz" && o.Size == 7 && o.Version == "6.6.6" && len(o.URLs) == 2 && o.SHA256 == "R09PRA=="
			}},
		// sscanf("%" PRIi64): a leading 0 is octal, 0x hexadecimal, and
		// reading stops at the first non-digit.
		{"octal size", answer("", url1, strings.Replace(pkg1, `"25998"`, `"025998"`, 1), act1), func(o *Offer) bool { return o.Size == 21 && o.SizeAttr == "025998" }},
		{"hex size", answer("", url1, strings.Replace(pkg1, `"25998"`, `"0x10"`, 1), act1), func(o *Offer) bool { return o.Size == 16 }},
		{"size with a tail", answer("", url1, strings.Replace(pkg1, `"25998"`, `" +12kB"`, 1), act1), func(o *Offer) bool { return o.Size == 12 }},
		// Attributes are found by local name whatever their namespace.
		{"namespaced attribute", answer("", url1, `<package xmlns:q="urn:q" q:name="n.gz" size="5"></package>`, act1), func(o *Offer) bool { return o.Name == "n.gz" }},
		// Every url is kept, in order.
		{"two urls", answer("", url1+`<url codebase="http://second"></url>`, pkg1, act1), func(o *Offer) bool {
			return len(o.URLs) == 2 && o.URLs[1] == "http://second" && o.URL() == "http://good/p.gz"
		}},
		// The app's status is not read either.
		{"app status", strings.Replace(answer("", url1, pkg1, act1), `status="ok"><updatecheck`, `status="error-unknownApplication"><updatecheck`, 1), func(o *Offer) bool { return o.Size == 25998 }},
	} {
		o, err := Read(strings.NewReader(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !c.check(o) {
			t.Errorf("%s: read %+v", c.name, o)
		}
	}
}

func TestReadRefusals(t *testing.T) {
	for _, c := range []struct {
		name, body, want string
		stricter         string
	}{
		{"namespace on response", strings.Replace(answer("", url1, pkg1, act1), `<response `, `<response xmlns="http://www.google.com/update2/response" `, 1), "namespace", ""},
		{"prefixed response", `<o:response xmlns:o="urn:o"><app><updatecheck status="ok"></updatecheck></app></o:response>`, "namespace", ""},
		{"no action", answer("", url1, pkg1, ""), "no action", ""},
		{"no postinstall action", answer("", url1, pkg1, `<action event="update" sha256="WA=="></action>`), "no postinstall", ""},
		{"empty sha256", answer("", url1, pkg1, `<action event="postinstall"></action>`), "empty sha256", ""},
		{"negative size", answer("", url1, strings.Replace(pkg1, `"25998"`, `"-3"`, 1), act1), "reads as -3", ""},
		{"octal zero", answer("", url1, strings.Replace(pkg1, `"25998"`, `"08"`, 1), act1), "reads as 0", ""},
		{"no size", answer("", url1, `<package name="p.gz"></package>`, act1), "reads as 0", ""},
		{"empty codebase", answer("", `<url codebase=""></url>`, pkg1, act1), "empty codebase", ""},
		{"no url", answer("", "", pkg1, act1), "no url", ""},
		{"no package", answer("", url1, "", act1), "no package", ""},
		{"empty name", answer("", url1, `<package size="3"></package>`, act1), "empty name", ""},
		{"status missing", `<response><app><updatecheck></updatecheck></app></response>`, "no status", ""},
		{"status unknown", `<response><app><updatecheck status="error-internal"></updatecheck></app></response>`, `"error-internal"`, ""},
		{"first updatecheck decides", `<response><app><updatecheck status="bogus"></updatecheck></app>` + strings.TrimPrefix(answer("", url1, pkg1, act1), `<?xml version="1.0" encoding="UTF-8"?><response protocol="3.0" server="nebraska">`), `"bogus"`, ""},
		{"not xml", `<response><app>`, "not XML", ""},
		{"empty", ``, "empty", ""},
		{"doctype", `<!DOCTYPE response [<!ATTLIST package size CDATA "99">]>` + answer("", url1, `<package name="p.gz"></package>`, act1)[len(`<?xml version="1.0" encoding="UTF-8"?>`):], "DOCTYPE", "omaha-doctype"},
		{"latin-1", strings.Replace(answer("", url1, pkg1, act1), "UTF-8", "ISO-8859-1", 1), "encoding", "omaha-encoding"},
		{"line break in codebase", answer("", "<url codebase=\"http://good/\n\"></url>", pkg1, act1), "line break", "omaha-attribute-whitespace"},
		{"too deep", strings.Repeat("<a>", MaxDepth+1), "deeper", ""},
	} {
		_, err := Read(strings.NewReader(c.body))
		if !errors.Is(err, ErrResponse) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if got := augen.StricterRule(err); got != c.stricter {
			t.Errorf("%s: stricter rule %q, want %q", c.name, got, c.stricter)
		}
	}
	if _, err := Read(strings.NewReader(`<response><app><updatecheck status="noupdate"></updatecheck></app></response>`)); !errors.Is(err, ErrNoUpdate) {
		t.Errorf("noupdate: %v", err)
	}
	if _, err := Read(bytes.NewReader(make([]byte, MaxResponse+1))); !errors.Is(err, ErrResponse) {
		t.Error("oversize accepted")
	}
}

// ClientInt against what glibc's sscanf("%li") gives.
func TestClientInt(t *testing.T) {
	for s, want := range map[string]int64{
		"25998": 25998, "025998": 21, "0x1f": 31, "0X1F": 31, "0x": 0, "0xg": 0, " \t12": 12, "+7": 7, "-7": -7,
		"12abc": 12, "": 0, "abc": 0, "0": 0, "9223372036854775807": math.MaxInt64, "9223372036854775808": math.MaxInt64,
		"99999999999999999999999": math.MaxInt64, "-9223372036854775808": math.MinInt64, "-99999999999999999999": math.MinInt64, "1e3": 1,
	} {
		if got := ClientInt(s); got != want {
			t.Errorf("ClientInt(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestRequestEscapes(t *testing.T) {
	b := Request{AppID: "x", Version: `1"<&`, Track: "dev-channel", Board: "amd64-usr"}.Marshal()
	var v struct {
		App struct {
			Version string `xml:"version,attr"`
			Track   string `xml:"track,attr"`
		} `xml:"app"`
	}
	if err := xml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.App.Version != `1"<&` || v.App.Track != "dev-channel" {
		t.Fatalf("%+v", v)
	}
}

func FuzzRead(f *testing.F) {
	if b, err := os.ReadFile("../../nebraska/nebraskatest/testdata/transcripts/10-omaha.body"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(answer("", url1, pkg1, act1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := Read(bytes.NewReader(b))
		if err != nil {
			return
		}
		if o.Size <= 0 || o.SHA256 == "" || o.Name == "" || len(o.URLs) == 0 {
			t.Fatalf("offer without size, sha256, name or url: %+v", o)
		}
	})
}
