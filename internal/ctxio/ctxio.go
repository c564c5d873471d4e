// Package ctxio makes long copies and reads stop when their context is
// canceled: a reader that checks the context before every read, so that a
// signal reaches a multi-GiB hash or copy within one buffer's worth of work.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r wrapped so that each Read first checks ctx and returns
// its error once it is done. With a nil or never-canceled context it
// returns r itself.
func Reader(ctx context.Context, r io.Reader) io.Reader {
	if ctx == nil || ctx.Done() == nil {
		return r
	}
	return &reader{ctx: ctx, r: r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	// Reads are capped so a huge buffer cannot delay the next check.
	if len(p) > 4<<20 {
		p = p[:4<<20]
	}
	return c.r.Read(p)
}

// Copy is io.Copy that stops with ctx's error once ctx is done.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	return io.Copy(dst, Reader(ctx, src))
}
