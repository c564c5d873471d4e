// Package generate plans payloads: which operations rebuild a target, and
// the data blobs they carry.
//
// Full payloads follow update_engine's delta_generator: the image in 1 MiB
// chunks, each bzip2-compressed at level 9 and stored as REPLACE_BZ when
// that is smaller (else REPLACE), one destination extent of 256 blocks per
// chunk, the SHA-256 of every blob; kernel and PCR policy become
// procedures chunked the same way, each procedure blob also listed as a
// noop operation with a sparse-hole extent for pre-2015 clients. The bzip2
// encoder writes libbzip2's exact bytes, so a full payload is
// delta_generator's, byte for byte, for the same inputs and key.
package generate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/augen-project/augen"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen/internal/pbzip2"
	"github.com/augen-project/augen/payload"
)

// ChunkSize is delta_generator's kFullUpdateChunkSize.
const ChunkSize = 1 << 20

// Input is one file to put in a payload.
type Input struct {
	// R yields the content; Size is its exact length.
	R    io.Reader
	Size int64
}

// FullOptions describe a full payload.
type FullOptions struct {
	// Image is the partition image (a USR image, or a sysext .raw). Its size
	// must be a non-zero multiple of 4096.
	Image Input
	// Kernel and PCRPolicy, when R is not nil, become KERNEL and PCR_POLICY
	// procedures. They must not be empty.
	Kernel, PCRPolicy Input
	// Workers compress chunks in parallel; 0 means GOMAXPROCS. The output
	// does not depend on it.
	Workers int
	// Blobs receives the operations' data in order.
	Blobs io.Writer
	// Progress, if set, is called with the input bytes processed so far
	// and the total, from one goroutine.
	Progress augen.Progress
	// Extra builds an extra payload (oem-*.gz, flatcar-*.gz: a
	// systemd-sysext image) for ue-rs, which machines install extras
	// with: the image may have any size (new_partition_info is its exact
	// size and hash, the last operation's data is not padded), and no
	// kernel or PCR policy goes with it.
	Extra bool
}

// Errors about the inputs.
var ErrInput = errors.New("generate: bad input")

// Full plans a full payload, writing the blobs to opts.Blobs and returning
// the unsigned manifest.
func Full(ctx context.Context, opts FullOptions) (*payload.Manifest, error) {
	if opts.Image.R == nil {
		return nil, fmt.Errorf("%w: no image", ErrInput)
	}
	if opts.Extra && (opts.Kernel.R != nil || opts.PCRPolicy.R != nil) {
		return nil, fmt.Errorf("%w: an extra payload carries no kernel or PCR policy (ue-rs ignores procedures)", ErrInput)
	}
	if opts.Image.Size <= 0 || opts.Image.Size%payload.BlockSize != 0 && !opts.Extra {
		return nil, fmt.Errorf("%w: the image is %d bytes; it must be a non-zero multiple of %d (a USR image is 1 GiB)",
			ErrInput, opts.Image.Size, payload.BlockSize)
	}
	for _, in := range []struct {
		name string
		in   Input
	}{{"kernel", opts.Kernel}, {"PCR policy", opts.PCRPolicy}} {
		if in.in.R != nil && in.in.Size <= 0 {
			return nil, fmt.Errorf("%w: the %s is empty", ErrInput, in.name)
		}
	}
	total := opts.Image.Size + opts.Kernel.Size + opts.PCRPolicy.Size
	c := newCompressor(opts.Workers, opts.Blobs, opts.Progress, total)
	m := &payload.Manifest{BlockSize: proto.Uint32(payload.BlockSize)}

	ops, info, err := c.chunks(ctx, opts.Image)
	if err != nil {
		return nil, err
	}
	m.PartitionOperations = ops
	m.NewPartitionInfo = info
	for _, p := range []struct {
		typ payload.ProcedureType
		in  Input
	}{{payload.ProcKernel, opts.Kernel}, {payload.ProcPCRPolicy, opts.PCRPolicy}} {
		if p.in.R == nil {
			continue
		}
		ops, info, err := c.chunks(ctx, p.in)
		if err != nil {
			return nil, err
		}
		m.Procedures = append(m.Procedures, &payload.Procedure{Type: p.typ.Enum(), Operations: ops, NewInfo: info})
		for _, op := range ops {
			m.NoopOperations = append(m.NoopOperations, &payload.Operation{
				Type:           payload.OpReplace.Enum(),
				DataOffset:     proto.Uint32(op.GetDataOffset()),
				DataLength:     proto.Uint32(op.GetDataLength()),
				DataSha256Hash: op.DataSha256Hash,
				DstExtents:     []*payload.Extent{{StartBlock: proto.Uint64(payload.SparseHole), NumBlocks: proto.Uint64(payload.Blocks(uint64(op.GetDataLength())))}},
			})
		}
	}
	return m, nil
}

// compressor turns inputs into REPLACE/REPLACE_BZ operations, compressing
// chunks on several goroutines while writing blobs strictly in order.
type compressor struct {
	workers  int
	blobs    io.Writer
	progress augen.Progress
	total    int64
	done     int64
	offset   uint64 // data offset of the next blob

	pool  sync.Pool // *job
	cache blobCache
}

type job struct {
	raw  []byte
	n    int
	out  []byte
	blob []byte // out
	typ  payload.OperationType
	sum  [sha256.Size]byte
	done chan struct{}
}

func newCompressor(workers int, blobs io.Writer, progress augen.Progress, total int64) *compressor {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	c := &compressor{workers: workers, blobs: blobs, progress: progress, total: total}
	c.pool.New = func() any { return &job{raw: make([]byte, ChunkSize)} }
	c.cache.init()
	return c
}

// chunks reads in sequentially in 1 MiB chunks. At most 2×workers chunks
// are in memory at once: the reader blocks until the writer has emitted the
// oldest one.
func (c *compressor) chunks(ctx context.Context, in Input) ([]*payload.Operation, *payload.InstallInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *job)
	order := make(chan *job, 2*c.workers)
	var wg sync.WaitGroup
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := workers.Get().(*worker)
			defer workers.Put(w)
			for j := range work {
				w.compress(j, &c.cache)
				close(j.done)
			}
		}()
	}
	imageHash := sha256.New()
	var readErr error
	go func() {
		defer close(order)
		defer close(work)
		var read int64
		for read < in.Size {
			j := c.pool.Get().(*job)
			j.n, j.done = 0, make(chan struct{})
			want := min(int64(ChunkSize), in.Size-read)
			n, err := io.ReadFull(in.R, j.raw[:want])
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					err = fmt.Errorf("%w: input ended after %d of %d bytes", ErrInput, read+int64(n), in.Size)
				}
				readErr = err
				return
			}
			j.n = n
			imageHash.Write(j.raw[:n])
			read += int64(n)
			// To a worker first, then into the ordered queue: a job in
			// the queue is always one a worker will finish, so the
			// writer never waits for a job nobody runs.
			select {
			case work <- j:
			case <-ctx.Done():
				return
			}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
		}
		// The input must end where its size says.
		var one [1]byte
		if n, _ := in.R.Read(one[:]); n > 0 {
			readErr = fmt.Errorf("%w: input is longer than its size %d", ErrInput, in.Size)
		}
	}()

	var ops []*payload.Operation
	var err error
	var chunkOff uint64
	for j := range order {
		<-j.done
		if err == nil {
			err = c.emit(j, chunkOff, &ops)
		}
		chunkOff += ChunkSize
		c.pool.Put(j)
		if err != nil {
			cancel()
		}
	}
	wg.Wait()
	if err == nil {
		err = readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, nil, err
	}
	info := &payload.InstallInfo{Size: proto.Uint64(uint64(in.Size)), Hash: imageHash.Sum(nil)}
	return ops, info, nil
}

func (c *compressor) emit(j *job, chunkOff uint64, ops *[]*payload.Operation) error {
	if _, err := c.blobs.Write(j.blob); err != nil {
		return err
	}
	if c.offset+uint64(len(j.blob)) > uint64(^uint32(0)) {
		return fmt.Errorf("%w: payload data exceeds 4 GiB (data offsets are 32-bit)", ErrInput)
	}
	*ops = append(*ops, &payload.Operation{
		Type:       j.typ.Enum(),
		DataOffset: proto.Uint32(uint32(c.offset)),
		DataLength: proto.Uint32(uint32(len(j.blob))),
		// Always 256 blocks, even for a short last chunk, as
		// delta_generator writes it: the client writes only the data.
		DstExtents:     []*payload.Extent{{StartBlock: proto.Uint64(chunkOff / payload.BlockSize), NumBlocks: proto.Uint64(ChunkSize / payload.BlockSize)}},
		DataSha256Hash: append([]byte(nil), j.sum[:]...),
	})
	c.offset += uint64(len(j.blob))
	c.done += int64(j.n)
	if c.progress != nil {
		c.progress("compressing", c.done, c.total)
	}
	return nil
}

// worker owns a reusable bzip2 encoder (about 12 MB of buffers).
type worker struct {
	enc *pbzip2.Encoder
}

var workers = sync.Pool{New: func() any { return &worker{enc: pbzip2.NewEncoder()} }}

// compress compresses j's chunk exactly as delta_generator does
// (BZ2_bzBuffToBuffCompress at level 9), keeping it raw as REPLACE when
// that is not smaller.
func (w *worker) compress(j *job, cache *blobCache) {
	raw := j.raw[:j.n]
	key := chunkKey(raw)
	if cached, ok := cache.get(key); cache != nil && ok {
		j.out = append(j.out[:0], cached.blob...)
		j.typ, j.sum = cached.typ, cached.sum
	} else {
		j.out = w.enc.Encode(j.out[:0], raw, pbzip2.Buffer)
		j.typ = payload.OpReplaceBz
		if len(j.out) >= len(raw) {
			j.out = append(j.out[:0], raw...)
			j.typ = payload.OpReplace
			j.sum = key
		} else {
			j.sum = sha256.Sum256(j.out)
		}
		if cache != nil {
			cache.put(key, j.typ, j.sum, j.out)
		}
	}
	j.blob = j.out
}

// chunkKey is the SHA-256 of a chunk, the blob cache's key. A chunk of
// zeros (free space: most of a 2 GiB USR partition) is recognised by
// comparison, about 30 times faster than hashing it, and given the zero
// chunk's hash, computed once.
func chunkKey(raw []byte) [sha256.Size]byte {
	if len(raw) == ChunkSize && bytes.Equal(raw, zeroChunk[:]) {
		return zeroChunkSum()
	}
	return sha256.Sum256(raw)
}

// zeroChunk is never written: its pages stay the kernel's zero page.
var (
	zeroChunk    [ChunkSize]byte
	zeroChunkSum = sync.OnceValue(func() [sha256.Size]byte { return sha256.Sum256(zeroChunk[:]) })
)

// blobCache remembers the compressed form of small-compressing chunks by
// their content hash. Images repeat chunks (free space is zeros), and the
// encoder is deterministic, so reusing a blob changes no byte of output.
// Only blobs up to maxCachedBlob bytes are kept, at most maxCached of them.
type blobCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedBlob
}

type cachedBlob struct {
	typ  payload.OperationType
	sum  [sha256.Size]byte
	blob []byte
}

const (
	maxCached     = 256
	maxCachedBlob = 16 << 10
)

func (c *blobCache) init() { c.m = make(map[[sha256.Size]byte]cachedBlob) }

func (c *blobCache) get(k [sha256.Size]byte) (cachedBlob, bool) {
	if c == nil {
		return cachedBlob{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[k]
	return b, ok
}

func (c *blobCache) put(k [sha256.Size]byte, typ payload.OperationType, sum [sha256.Size]byte, blob []byte) {
	if len(blob) > maxCachedBlob {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) < maxCached {
		c.m[k] = cachedBlob{typ: typ, sum: sum, blob: append([]byte(nil), blob...)}
	}
}
