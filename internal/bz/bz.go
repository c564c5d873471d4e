// Package bz decodes the bzip2 blobs of update payloads with the client's
// rules: a REPLACE_BZ blob is exactly one bzip2 stream, and its output must
// fit where it is written.
package bz

import (
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	dsbzip2 "github.com/dsnet/compress/bzip2"
)

// ErrFormat wraps every error about malformed bzip2 data.
var ErrFormat = errors.New("bzip2")

// DecodeOne decompresses blob, which must be exactly one bzip2 stream with
// nothing after it (update_engine aborts when input remains after the end of
// the stream), producing at most max bytes.
func DecodeOne(blob []byte, max int64) ([]byte, error) {
	out, err := decode(blob, max)
	if err != nil {
		return nil, err
	}
	// The standard decoder reads concatenated streams as one. A second
	// stream starts byte-aligned with "BZh1".."BZh9" followed by a block or
	// end-of-stream magic: look for such a place whose prefix is a complete
	// stream by itself.
	if p := secondStream(blob); p > 0 {
		return nil, fmt.Errorf("%w: data holds more than one stream (a second starts at byte %d)", ErrFormat, p)
	}
	return out, nil
}

func decode(blob []byte, max int64) ([]byte, error) {
	if len(blob) < 4 || string(blob[:3]) != "BZh" {
		return nil, fmt.Errorf("%w: not a bzip2 stream (no BZh header)", ErrFormat)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(bzip2.NewReader(bytes.NewReader(blob)), max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: data decompresses to more than the %d bytes it may fill", ErrFormat, max)
	}
	return buf.Bytes(), nil
}

var (
	blockMagic = []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}
	endMagic   = []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90}
)

// secondStream returns the offset of a second bzip2 stream in blob, or 0.
func secondStream(blob []byte) int {
	for p := 1; p+10 <= len(blob); p++ {
		i := bytes.Index(blob[p:], []byte("BZh"))
		if i < 0 {
			return 0
		}
		p += i
		if p+10 > len(blob) {
			return 0
		}
		if lvl := blob[p+3]; lvl < '1' || lvl > '9' {
			continue
		}
		if m := blob[p+4 : p+10]; !bytes.Equal(m, blockMagic) && !bytes.Equal(m, endMagic) {
			continue
		}
		if completeStream(blob[:p]) {
			return p
		}
	}
	return 0
}

// completeStream reports whether b is exactly one whole bzip2 stream.
func completeStream(b []byte) bool {
	zr, err := dsbzip2.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return false
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return false
	}
	return zr.InputOffset == int64(len(b))
}
