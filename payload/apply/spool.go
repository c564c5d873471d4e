package apply

import (
	"bytes"
	"io"
	"os"

	"github.com/augen-project/augen/internal/tempfile"
)

// spoolMem is how much of one operation's output a spool holds in memory
// before it moves to a temporary file.
const spoolMem = 8 << 20

// spool holds an operation's output until the operation is done (bspatch
// writes its output once it is whole: a BSDIFF may overlap its own
// source): in memory while small, then in a temporary file in dir, so that
// a payload's large operations cost disk, not memory.
type spool struct {
	dir  string
	mem  bytes.Buffer
	file *os.File
	n    int64
}

func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && s.mem.Len()+len(p) > spoolMem {
		f, err := tempfile.Create(s.dir, "augen-op-*")
		if err != nil {
			return 0, err
		}
		s.file = f
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			return 0, err
		}
		s.mem = bytes.Buffer{}
	}
	s.n += int64(len(p))
	if s.file != nil {
		return s.file.Write(p)
	}
	return s.mem.Write(p)
}

// reader reads the output back from its start.
func (s *spool) reader() io.ReaderAt {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem.Bytes())
}

// close removes the temporary file, if any.
func (s *spool) close() {
	if s.file != nil {
		tempfile.Remove(s.file)
		s.file = nil
	}
}
