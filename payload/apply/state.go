package apply

import (
	"fmt"
	"io"
	"sort"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/payload"
)

// state is what the applier knows about each target while it applies.
type state struct {
	m     *payload.Manifest
	part  *target
	files map[payload.ProcedureType]*target
	// progress is Targets.Progress.
	progress func(done int64)
}

// target is one partition or file with what the client's reads of it see.
type target struct {
	t       Target
	tempDir string // where large operation outputs are spooled
	name    string
	limit   uint64 // bytes it may be accessed up to (augen's bound)
	// file: reads past size fail, as the client's pread and bspatch's
	// getc fail past a file's end; writes extend it.
	file bool
	size uint64
	// written, for a full update of the target, has a bit per block
	// written whole so far: reading any other block, or ending with one
	// of the first want bytes unwritten, makes the result depend on the
	// running system.
	written []uint64
	want    uint64
}

func newState(m *payload.Manifest, t *Targets) (*state, error) {
	st := &state{m: m, files: map[payload.ProcedureType]*target{}, progress: t.Progress}
	limit := payload.Blocks(t.Limit) * payload.BlockSize
	if t.Partition != nil {
		st.part = &target{t: t.Partition, tempDir: t.TempDir, name: "partition", limit: limit}
		if m.GetOldPartitionInfo() == nil {
			st.part.full(m.GetNewPartitionInfo().GetSize())
		} else if t.PartitionSize > 0 {
			// A delta's target starts as a copy of the whole running
			// partition: reads past its end fail, as the client's short
			// read of the device does (PReadAll, bspatch's pread).
			st.part.file, st.part.size = true, t.PartitionSize
		}
	}
	// The budget: WorkFactor times what the payload rebuilds and reads.
	budget := satAdd(satMul(max(limit, m.GetOldPartitionInfo().GetSize()), WorkFactor), WorkSlack)
	for _, p := range m.Procedures {
		if p.Type == nil {
			continue
		}
		budget = satAdd(budget, satMul(max(p.GetNewInfo().GetSize(), p.GetOldInfo().GetSize()), WorkFactor))
		f := t.Procedures[p.GetType()]
		if f == nil {
			continue
		}
		g := &target{t: f, tempDir: t.TempDir, name: p.GetType().String(), limit: MaxFileSize, file: true}
		if oi := p.GetOldInfo(); oi != nil {
			g.size = oi.GetSize()
			if n, ok := t.FileSizes[p.GetType()]; ok {
				g.size = n
			}
		} else {
			g.full(p.GetNewInfo().GetSize())
		}
		st.files[p.GetType()] = g
	}
	var work uint64
	add := func(ops []*payload.Operation, limit uint64) {
		for _, op := range ops {
			work = satAdd(work, opWork(op, limit))
		}
	}
	add(m.PartitionOperations, limit)
	for _, p := range m.Procedures {
		if p.Type != nil {
			add(p.Operations, MaxFileSize)
		}
	}
	if work > budget {
		return nil, fmt.Errorf("%w: the operations read and write %d bytes in all, more than %d× what they rebuild (%d bytes allowed); refused before applying anything: %w",
			ErrApply, work, WorkFactor, budget, augen.Stricter("work-bound"))
	}
	return st, nil
}

// full marks t as rebuilt from nothing: size bytes must be written.
func (g *target) full(size uint64) {
	g.want = size
	g.written = make([]uint64, (payload.Blocks(g.limit)+63)/64)
}

// read reads len(p) bytes at off, after checking them as the client's
// read would see them: inside augen's bound, inside the file, and (for a
// full update) written by the payload before.
func (g *target) read(op *payload.Op, p []byte, off uint64, verb string) error {
	n := uint64(len(p))
	if n == 0 {
		return nil
	}
	if off > g.limit || n > g.limit-off {
		return beyond(op, g.limit, "%s bytes %d..%d", verb, off, satAdd(off, n))
	}
	if g.file && off+n > g.size {
		return failf(op, "%s bytes %d..%d of the %s, which is %d bytes long there: the client's read fails past its end", verb, off, off+n, g.name, g.size)
	}
	if g.written != nil {
		for b := off / payload.BlockSize; b <= (off+n-1)/payload.BlockSize; b++ {
			if g.written[b/64]&(1<<(b%64)) == 0 {
				return stricterf(op, "full-reads-running-system", "this full update reads block %d of the %s before writing it: what it installs would depend on the running system", b, g.name)
			}
		}
	}
	got, err := g.t.ReadAt(p, int64(off))
	if got == len(p) {
		return nil
	}
	if err == io.EOF && !g.file {
		// A partition target may be shorter on disk than its limit:
		// the client's block device reads on, here as zeros.
		clear(p[got:])
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// wrote records the byte ranges an operation wrote.
func (g *target) wrote(rs ranges) {
	for _, r := range rs.merged() {
		if g.file && r.end > g.size {
			g.size = r.end
		}
		if g.written == nil {
			continue
		}
		first := (r.off + payload.BlockSize - 1) / payload.BlockSize
		for b := first; (b+1)*payload.BlockSize <= r.end; b++ {
			g.written[b/64] |= 1 << (b % 64)
		}
	}
}

// finish checks, for each full update, that every byte it must rebuild
// was written.
func (st *state) finish() error {
	for _, g := range append([]*target{st.part}, st.sortedFiles()...) {
		if g == nil || g.written == nil {
			continue
		}
		blocks := payload.Blocks(g.want)
		var missing, first uint64
		for b := uint64(0); b < blocks; b++ {
			if g.written[b/64]&(1<<(b%64)) == 0 {
				if missing == 0 {
					first = b
				}
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%w: this full update leaves %d of the %s's %d blocks unwritten (the first is block %d): what it installs would depend on the running system: %w",
				ErrApply, missing, g.name, blocks, first, augen.Stricter("full-reads-running-system"))
		}
	}
	return nil
}

func (st *state) sortedFiles() []*target {
	keys := make([]int, 0, len(st.files))
	for k := range st.files {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	out := make([]*target, 0, len(keys))
	for _, k := range keys {
		out = append(out, st.files[payload.ProcedureType(k)])
	}
	return out
}

// ranges collects the byte ranges one operation wrote.
type ranges []brange

type brange struct{ off, end uint64 }

func (rs *ranges) add(off, n uint64) {
	if n > 0 {
		*rs = append(*rs, brange{off, off + n})
	}
}

// merged returns the ranges sorted and joined where they touch, so that
// a block written in two parts by one operation counts as written whole.
func (rs ranges) merged() []brange {
	sort.Slice(rs, func(i, j int) bool { return rs[i].off < rs[j].off })
	var out []brange
	for _, r := range rs {
		if k := len(out); k > 0 && r.off <= out[k-1].end {
			out[k-1].end = max(out[k-1].end, r.end)
			continue
		}
		out = append(out, r)
	}
	return out
}
