package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// Finding 9: a PAX (or GNU) sparse member is expanded by archive/tar, so
// the bytes verified were not the bytes at the member's offset that push
// uploaded. Only plain USTAR headers are read.
func TestPAXMemberRefused(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	body := []byte("{}")
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: EnvelopeName, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX,
		PAXRecords: map[string]string{"comment": "sparse maps ride in records like this"}})
	tw.Write(body)
	tw.Close()
	err := ReadTar(bytes.NewReader(b.Bytes()), func(string, int64, io.Reader) error { return nil })
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "USTAR") {
		t.Fatalf("ReadTar = %v", err)
	}
}

// Finding 9: keys that differ only in case, and duplicate keys, are
// refused in the statement and the envelope.
func TestStrictJSONKeys(t *testing.T) {
	for _, doc := range []string{
		`{"_type":"https://in-toto.io/Statement/v1","Subject":[]}`,
		`{"_type":"a","_type":"https://in-toto.io/Statement/v1"}`,
	} {
		if _, err := ParseStatement([]byte(doc)); !errors.Is(err, ErrStatement) {
			t.Errorf("ParseStatement(%s) = %v", doc, err)
		}
	}
	for _, doc := range []string{
		`{"payloadType":"application/vnd.in-toto+json","PayloadType":"x","payload":"","signatures":[]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"","payload":"e30=","signatures":[]}`,
		`{"payloadType":"text/plain","payload":"","signatures":[]}`,
	} {
		if _, err := ParseEnvelope([]byte(doc)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseEnvelope(%s) = %v", doc, err)
		}
	}
}
