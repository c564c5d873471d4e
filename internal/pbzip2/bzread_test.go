package pbzip2

import (
	"bytes"
	"testing"
)

// BZRead reads what libbzip2's BZ2_bzRead gives, and fails where it fails.
func TestBZRead(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 2000)
	s := Compress(data, Stream)
	for _, tc := range []struct {
		name   string
		stream []byte
		reads  []int
		ok     bool
	}{
		{"whole", s, []int{len(data)}, true},
		{"in parts", s, []int{1, 100, 0, len(data) - 101}, true},
		{"past the end", s, []int{len(data) + 1}, false},
		{"into a second stream", append(append([]byte{}, s...), s...), []int{len(data), 1}, false},
		{"second stream unread", append(append([]byte{}, s...), s...), []int{len(data)}, true},
		{"no header", []byte("BZ"), []int{1}, false},
		{"nothing read of garbage", []byte("garbage"), []int{0}, true},
	} {
		r := NewBZRead(tc.stream, 1<<20)
		var err error
		var got []byte
		for _, n := range tc.reads {
			p := make([]byte, n)
			if err = r.ReadFull(p); err != nil {
				break
			}
			got = append(got, p...)
		}
		if err == nil {
			err = r.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if err == nil && !bytes.Equal(got, data[:len(got)]) {
			t.Errorf("%s: wrong bytes", tc.name)
		}
	}
	// A bad block CRC is seen only once the block's last byte is read.
	bad := CraftStream(9, [][]byte{data[:5000]}, func(int, uint32) uint32 { return 1 }, nil)
	if err := NewBZRead(bad, 1<<20).ReadFull(make([]byte, 4999)); err != nil {
		t.Errorf("part of a bad-CRC block: %v", err)
	}
	if err := NewBZRead(bad, 1<<20).ReadFull(make([]byte, 5000)); err == nil {
		t.Error("a bad-CRC block read to its end")
	}
}

// FuzzBZRead: no panic, never more than the reads ask, within its bound.
func FuzzBZRead(f *testing.F) {
	f.Add(Compress([]byte("hello hello hello"), Stream), uint16(5), uint16(12))
	f.Add(CraftStream(9, [][]byte{{1, 2, 7, 7, 7, 7}}, nil, nil), uint16(6), uint16(1))
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16) {
		r := NewBZRead(stream, 1<<16)
		for _, n := range []uint16{a, b} {
			if err := r.ReadFull(make([]byte, int(n)%(1<<16))); err != nil {
				return
			}
		}
		_ = r.Close()
		if r.total > 1<<16 {
			t.Fatalf("gave %d bytes", r.total)
		}
	})
}
