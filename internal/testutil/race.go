//go:build race

package testutil

// Race reports whether the race detector is on. Under it, a test that
// repeats the same work many times (the same payload built with 1, 2, 3
// and 8 workers; every byte of a file flipped) may do fewer rounds that
// still run every concurrent path: the race detector looks for races, and
// the full suite, without it, runs every round and assertion.
const Race = true
