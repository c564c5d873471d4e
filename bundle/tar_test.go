package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func mem(name, content string) Member {
	return Member{Name: name, Size: int64(len(content)), Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

func sampleTar(t *testing.T) []byte {
	var b bytes.Buffer
	err := WriteTar(&b, []Member{mem("flatcar_production_update.gz", "payload"), mem(EnvelopeName, "{}"), mem("oem-azure.gz", "oem")}, time.Unix(1258628400, 0))
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestTarRoundTripAndDeterminism(t *testing.T) {
	a, b := sampleTar(t), sampleTar(t)
	if !bytes.Equal(a, b) {
		t.Fatal("not deterministic")
	}
	var names []string
	err := ReadTar(bytes.NewReader(a), func(name string, size int64, body io.Reader) error {
		c, _ := io.ReadAll(body)
		names = append(names, name+"="+string(c))
		return nil
	})
	if err != nil || strings.Join(names, ",") != EnvelopeName+"={},flatcar_production_update.gz=payload,oem-azure.gz=oem" {
		t.Fatalf("%v %v", names, err)
	}
}

func rawTar(t *testing.T, entries ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range entries {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		tw.WriteHeader(h)
		tw.Write(make([]byte, h.Size))
	}
	tw.Close()
	return b.Bytes()
}

func TestTarRejects(t *testing.T) {
	env := &tar.Header{Name: EnvelopeName, Size: 2}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"traversal", rawTar(t, &tar.Header{Name: EnvelopeName, Size: 2}, &tar.Header{Name: "../flatcar_production_update.gz", Size: 1}), "unexpected member"},
		{"symlink", rawTar(t, env, &tar.Header{Name: "flatcar_production_update.gz", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}), "not a regular file"},
		{"duplicate", rawTar(t, &tar.Header{Name: EnvelopeName, Size: 2}, &tar.Header{Name: "oem-a.gz", Size: 1}, &tar.Header{Name: "oem-a.gz", Size: 1}), "duplicated or out of order"},
		{"envelope not first", rawTar(t, &tar.Header{Name: "flatcar_production_update.gz", Size: 1}), "first member"},
		{"oversize envelope", rawTar(t, &tar.Header{Name: EnvelopeName, Size: MaxEnvelopeSize + 1}), "over its limit"},
		{"trailing data", append(sampleTar(t), 'x'), "data after the end"},
		{"empty", rawTar(t), "empty bundle"},
		{"not tar", []byte("hello"), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ReadTar(bytes.NewReader(tc.in), func(string, int64, io.Reader) error { return nil })
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Zero padding after the archive (as GNU tar writes records) is fine.
	if err := ReadTar(bytes.NewReader(append(sampleTar(t), make([]byte, 9000)...)), func(string, int64, io.Reader) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func FuzzReadTar(f *testing.F) {
	var b bytes.Buffer
	WriteTar(&b, []Member{mem(EnvelopeName, "{}"), mem("flatcar_production_update.gz", "x")}, time.Unix(0, 0))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		ReadTar(bytes.NewReader(in), func(name string, size int64, body io.Reader) error {
			if !memberName(name) || size > MaxPayloadSize {
				t.Fatalf("accepted %q (%d bytes)", name, size)
			}
			_, err := io.Copy(io.Discard, body)
			return err
		})
	})
}

func TestReadTarAtOffsets(t *testing.T) {
	data := []string{"{}", strings.Repeat("x", 1000), "oem"}
	members := []Member{mem(EnvelopeName, data[0]), mem("flatcar_production_update.gz", data[1]), mem("oem-azure.gz", data[2])}
	var buf bytes.Buffer
	if err := WriteTar(&buf, members, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	i := 0
	err := ReadTarAt(bytes.NewReader(buf.Bytes()), func(name string, off, size int64, _ io.Reader) error {
		if name != members[i].Name || string(buf.Bytes()[off:off+size]) != data[i] {
			t.Errorf("member %d: %s at %d+%d does not point at its data", i, name, off, size)
		}
		i++
		return nil
	})
	if err != nil || i != len(members) {
		t.Fatalf("%d members read: %v", i, err)
	}
}
