package strictjson

import (
	"strings"
	"testing"
)

type inner struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type doc struct {
	Type    string  `json:"_type"`
	Subject []inner `json:"subject"`
	Skip    string  `json:"-"`
}

func TestDecode(t *testing.T) {
	var d doc
	if err := Decode([]byte(`{"_type":"x","subject":[{"name":"a","digest":{"sha256":"00","sha1":"11"}}]}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Subject[0].Digest["sha1"] != "11" {
		t.Fatalf("decoded %+v", d)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"_type":"x","_type":"y"}`, "appears twice"},
		{`{"Subject":[]}`, "case-sensitive"},
		{`{"subject":[{"name":"a","Name":"b"}]}`, "differ only in case"},
		{`{"subject":[{"name":"a","digest":{"s":"1","s":"2"}}]}`, "appears twice"},
		{`{"subject":[{"name":"a","digest":{"sha256":"1","SHA256":"2"}}]}`, "differ only in case"},
		{`{"subject":[{"NAME":"a"}]}`, "case-sensitive"},
		{`{"other":1}`, "unknown field"},
		{`{"_type":"x"} {}`, "after"},
		{`{"_type":"x"`, "EOF"},
		{`{"subject":` + strings.Repeat(`[`, 40), "deeper"},
	} {
		var d doc
		err := Decode([]byte(tc.in), &d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Decode(%.40s) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"_type":"x","subject":[{"name":"a","digest":{"sha256":"00"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d doc
		_ = Decode(b, &d)
	})
}
