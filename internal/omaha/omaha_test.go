package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"strings"
	"testing"
)

// The response recorded from a real Nebraska server (exchange 10).
func TestParseRecorded(t *testing.T) {
	f, err := os.Open("../../nebraska/nebraskatest/testdata/transcripts/10-omaha.body")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	o, err := resp.Offer("E96281A6-D1AF-4BDE-9A0A-97B76E56DC57")
	if err != nil {
		t.Fatal(err)
	}
	if o.Version != "9999.1.0" || o.URL() != "http://127.0.0.1:18000/flatcar/flatcar_test_update.gz" || o.Size != 3000000 ||
		o.SHA1 != "HLjLKI5kPrZ+P/Zf1YS1LAM+/po=" || o.SHA256 != "pZiGxk/qGI76YWdO5DrzMKV33BKfQqp1Frr3d2hArk4=" {
		t.Fatalf("offer %+v", o)
	}
	if len(o.Extra) != 1 || o.Extra[0].Name != "oem-azure.gz" || o.Extra[0].HashSHA256 != "937493d0d55de4a2c48014c2b65af8b7a69288e4a786350f9b8c7ed08567f2a9" || o.Extra[0].Required != "false" {
		t.Fatalf("extra %+v", o.Extra)
	}
}

func TestOfferRefusals(t *testing.T) {
	for name, body := range map[string]string{
		"noupdate":  `<response protocol="3.0"><app appid="{a}" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`,
		"no action": `<response protocol="3.0"><app appid="{a}" status="ok"><updatecheck status="ok"><urls><url codebase="http://x/"></url></urls><manifest version="1.0.0"><packages><package name="p" size="3"></package></packages></manifest></updatecheck></app></response>`,
		"bad size":  `<response protocol="3.0"><app appid="{a}" status="ok"><updatecheck status="ok"><urls><url codebase="http://x/"></url></urls><manifest version="1.0.0"><packages><package name="p" size="-3"></package></packages></manifest></updatecheck></app></response>`,
		"other app": `<response protocol="3.0"><app appid="{b}" status="ok"></app></response>`,
		"app error": `<response protocol="3.0"><app appid="{a}" status="error-unknownApplication"></app></response>`,
	} {
		resp, err := Parse(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := resp.Offer("a"); !errors.Is(err, ErrResponse) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse(strings.NewReader(`<response protocol="2.0"></response>`)); !errors.Is(err, ErrResponse) {
		t.Error("protocol 2.0 accepted")
	}
	if _, err := Parse(bytes.NewReader(make([]byte, MaxResponse+1))); !errors.Is(err, ErrResponse) {
		t.Error("oversize accepted")
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

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../nebraska/nebraskatest/testdata/transcripts/10-omaha.body"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := Parse(bytes.NewReader(b))
		if err != nil {
			return
		}
		if o, err := resp.Offer("e96281a6-d1af-4bde-9a0a-97b76e56dc57"); err == nil && (o.Size <= 0 || o.SHA256 == "") {
			t.Fatalf("offer without size or sha256: %+v", o)
		}
	})
}
