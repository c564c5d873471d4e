package btrfs

// maxReadSize is the largest single read the reader makes (an extent).
const maxReadSize = maxExtent
