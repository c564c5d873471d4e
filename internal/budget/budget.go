// Package budget bounds the work of readers that walk structures an
// attacker may have built (filesystem trees, FAT chains): every read is
// charged against a byte budget and checks a context, so a tree whose
// pointers loop or fan out to the same node ends with an error after a
// bounded amount of reading instead of running for days.
package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// ErrExceeded is wrapped when a walk has read all its budget allows.
var ErrExceeded = errors.New("read budget exceeded")

// ReaderAt is an io.ReaderAt that charges every read against a budget.
type ReaderAt struct {
	r    io.ReaderAt
	ctx  context.Context
	max  int64
	used atomic.Int64
}

// NewReaderAt returns r with a budget of max bytes read in total; reads
// fail once ctx is done.
func NewReaderAt(ctx context.Context, r io.ReaderAt, max int64) *ReaderAt {
	return &ReaderAt{r: r, ctx: ctx, max: max}
}

// ReadAt reads as r.ReadAt does, unless the read would go past the budget
// or the context is done.
func (b *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if used := b.used.Add(int64(len(p))); used > b.max {
		return 0, fmt.Errorf("%w: more than %d bytes read (the structure loops or is far larger than any real one)", ErrExceeded, b.max)
	}
	return b.r.ReadAt(p, off)
}

// Used is the number of bytes charged so far.
func (b *ReaderAt) Used() int64 { return b.used.Load() }
