// Package filekind recognizes the kinds of file a release engineer handles
// by their first bytes, so that a file given to the wrong command can be
// named for what it is, with the command that takes it.
package filekind

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
)

// Kind is a kind of file.
type Kind int

const (
	Unknown   Kind = iota
	Payload        // a CrAU update payload
	Tar            // a tar archive (a release bundle)
	Bzip2          // bzip2-compressed data
	DiskImage      // a GPT disk image (a production image)
	Ext            // an ext2/3/4 filesystem image (a USR image)
	Btrfs          // a btrfs filesystem image (a USR image)
	PEM            // a PEM file (a key)
	JSON           // a JSON document (a policy)
)

// HeadSize is how many leading bytes Detect looks at.
const HeadSize = 0x10040 + 8

// Detect names the kind of file whose first bytes are head (up to
// HeadSize of them; fewer if the file is shorter).
func Detect(head []byte) Kind {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "CrAU"):
		return Payload
	case at(257, "ustar"):
		return Tar
	case at(0, "BZh") && len(head) > 3 && head[3] >= '1' && head[3] <= '9':
		return Bzip2
	case at(512, "EFI PART"):
		return DiskImage
	case len(head) >= 1082 && binary.LittleEndian.Uint16(head[1080:]) == 0xEF53:
		return Ext
	case at(0x10040, "_BHRfS_M"):
		return Btrfs
	case at(0, "-----BEGIN "):
		return PEM
	}
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return JSON
	}
	return Unknown
}

// DetectFile reads the start of the file at path and names its kind.
func DetectFile(path string) (Kind, error) {
	f, err := os.Open(path)
	if err != nil {
		return Unknown, err
	}
	defer f.Close()
	head := make([]byte, HeadSize)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return Unknown, err
	}
	return Detect(head[:n]), nil
}

// String says what the file is and, where there is one, the command that
// takes it.
func (k Kind) String() string {
	switch k {
	case Payload:
		return `a CrAU update payload (check it with "augen payload verify")`
	case Tar:
		return `a tar archive, such as a release bundle (check one with "augen verify")`
	case Bzip2:
		return "bzip2-compressed data"
	case DiskImage:
		return `a GPT disk image, such as a production image (take it apart with "augen unpack")`
	case Ext:
		return "an ext2/3/4 filesystem image, such as a USR partition image"
	case Btrfs:
		return "a btrfs filesystem image, such as a USR partition image"
	case PEM:
		return "a PEM file, such as a key"
	case JSON:
		return "a JSON document, such as a trust policy"
	}
	return "not a kind of file augen knows"
}
