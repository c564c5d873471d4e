package btrfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/augen-project/augen/internal/budget"
)

// Finding 4, btrfs: a chunk tree of seven internal levels whose 121
// pointers per node all name the one node below walks 121^7 paths to its
// leaf. Every node read is charged to the budget; Open stops when it is
// spent, and the bytes read prove the bound.
func TestChunkTreeFanOutStopsAtBudget(t *testing.T) {
	const node = 4096
	img := synthetic([]byte("VERSION=1.2.3\n"), false)
	base := len(img)
	img = append(img, make([]byte, 7*node)...)
	le := binary.LittleEndian
	sb := img[superOffset:]
	le.PutUint64(sb[0x32b+17:], uint64(len(img))) // the system chunk covers the new nodes
	below := uint64(le.Uint64(sb[0x58:]))         // the chunk tree's leaf
	per := (node - headerSize) / keyPtrSize
	for level := 1; level <= 7; level++ {
		addr := uint64(base + (level-1)*node)
		n := img[addr : addr+node]
		le.PutUint64(n[48:], addr)
		le.PutUint32(n[96:], uint32(per))
		n[100] = byte(level)
		for i := 0; i < per; i++ {
			le.PutUint64(n[headerSize+i*keyPtrSize+17:], below)
		}
		below = addr
	}
	le.PutUint64(sb[0x58:], below)
	sb[0xc7] = 7

	const max = 4 << 20
	r := budget.NewReaderAt(context.Background(), bytes.NewReader(img), max)
	_, err := Open(r, int64(len(img)))
	if !errors.Is(err, budget.ErrExceeded) {
		t.Fatalf("Open = %v, want the budget exceeded", err)
	}
	if used := r.Used(); used > max+node {
		t.Fatalf("read %d bytes with a budget of %d", used, max)
	}
	// With the budget verification gives (osrelease.MaxRead), the cap on
	// chunks ends the walk first: every leaf visit adds one.
	r = budget.NewReaderAt(context.Background(), bytes.NewReader(img), 64<<20)
	if _, err := Open(r, int64(len(img))); err == nil || !errors.Is(err, ErrFormat) || r.Used() > 64<<20 {
		t.Fatalf("Open = %v after %d bytes", err, r.Used())
	}
}
