package ext4

// maxReadSize is the largest single read the reader makes (a directory).
const maxReadSize = maxDirSize
