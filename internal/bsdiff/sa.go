package bsdiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"index/suffixarray"
)

// suffixArray returns the suffix array of data (the start offsets of its
// suffixes in sorted order), built by the standard library's SA-IS
// implementation. index/suffixarray does not export the array, so it is
// read back from Index.Write's documented-by-code stream (the length, the
// data, then chunks of a varint chunk size followed by uvarints), and
// checked before use: a permutation of 0..n-1 whose neighbours are in order.
func suffixArray(data []byte) ([]int32, error) {
	if len(data) >= 1<<31 {
		return nil, errors.New("bsdiff: source larger than 2 GiB")
	}
	var buf bytes.Buffer
	if err := suffixarray.New(data).Write(&buf); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	bad := func(what string) error { return fmt.Errorf("bsdiff: unexpected suffix array stream (%s)", what) }
	if len(b) < binary.MaxVarintLen64 {
		return nil, bad("short")
	}
	n, _ := binary.Varint(b[:binary.MaxVarintLen64])
	if n != int64(len(data)) || len(b) < binary.MaxVarintLen64+len(data) {
		return nil, bad("length")
	}
	b = b[binary.MaxVarintLen64+len(data):]
	sa := make([]int32, 0, len(data))
	seen := make([]bool, len(data))
	for len(b) > 0 {
		if len(b) < binary.MaxVarintLen64 {
			return nil, bad("chunk header")
		}
		p, _ := binary.Varint(b[:binary.MaxVarintLen64])
		if p < binary.MaxVarintLen64 || p > int64(len(b)) {
			return nil, bad("chunk size")
		}
		chunk := b[binary.MaxVarintLen64:p]
		for len(chunk) > 0 {
			v, k := binary.Uvarint(chunk)
			if k <= 0 || v >= uint64(len(data)) || seen[v] {
				return nil, bad("entry")
			}
			seen[v] = true
			sa = append(sa, int32(v))
			chunk = chunk[k:]
		}
		b = b[p:]
	}
	if len(sa) != len(data) {
		return nil, bad("count")
	}
	// Spot-check the order: up to 4096 neighbouring pairs, comparing at
	// most 64 bytes each (a full check could be quadratic on long repeats).
	step := max(1, len(sa)/4096)
	for i := step; i < len(sa); i += step {
		a, c := data[sa[i-1]:], data[sa[i]:]
		if bytes.Compare(a[:min(len(a), 64)], c[:min(len(c), 64)]) > 0 {
			return nil, bad("order")
		}
	}
	return sa, nil
}
