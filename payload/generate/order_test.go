package generate

import (
	"testing"

	"github.com/augen-project/augen/payload"
)

// A cycle the merge refuses is broken by making its cheapest operation
// full; one it accepts is replaced by the merged operation.
func TestOrderCycles(t *testing.T) {
	// a reads block 1 and writes block 0; b reads 0 and writes 1.
	mk := func() []*op {
		return []*op{
			{typ: payload.OpBsdiff, src: extents(1, 1), dst: extents(0, 1), data: make([]byte, 10), fullSize: 100},
			{typ: payload.OpBsdiff, src: extents(0, 1), dst: extents(1, 1), data: make([]byte, 10), fullSize: 50},
		}
	}
	var madeFull []*op
	full := func(o *op) error {
		madeFull = append(madeFull, o)
		o.typ, o.src, o.data = payload.OpReplaceBz, nil, make([]byte, o.fullSize)
		return nil
	}
	ops := mk()
	out, err := order(ops, 2, full, func([]*op) (*op, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || len(madeFull) != 1 || madeFull[0] != ops[1] || out[0] != ops[0] {
		t.Fatalf("refused merge: got %v, made full %v; want the cheaper op (b) made full, a first", out, madeFull)
	}

	madeFull = nil
	ops = mk()
	merged := &op{typ: payload.OpBsdiff, src: extents(0, 2), dst: extents(0, 2), data: make([]byte, 15)}
	var offered []*op
	out, err = order(ops, 2, full, func(c []*op) (*op, error) { offered = c; return merged, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(offered) != 2 || len(out) != 1 || out[0] != merged || len(madeFull) != 0 {
		t.Fatalf("accepted merge: offered %v, got %v, made full %v", offered, out, madeFull)
	}
}
