// Command augen builds, signs, verifies and publishes Flatcar Container
// Linux update payloads. See README.md and `augen --help`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/augen-project/augen/internal/tempfile"
)

// interruptGrace is how long an interrupted command gets to unwind on its
// own (its deferred removals run) before what it left is removed for it
// and augen exits anyway.
const interruptGrace = 500 * time.Millisecond

func main() {
	boundMemory()
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// memoryLimit is the Go heap's soft limit (runtime/debug.SetMemoryLimit)
// unless $GOMEMLIMIT sets another. Verifying holds little live data (large
// operations go through temporary files), but decoding bzip2 blocks of up
// to ~46 MB each leaves garbage faster than a lazy collector returns it:
// the limit makes the collector keep a verifier on a bastion host within
// its bound (doc/hostile-input.md §memory). A command that needs more live
// memory still gets it; the collector then only runs more often.
const memoryLimit = 160 << 20

func boundMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

// runMain runs a command with the signals that stop it: SIGINT, SIGTERM,
// SIGHUP and SIGPIPE (a closed pipe on stdout) cancel its context; after
// a short grace every temporary file still there is removed, one line says
// what happened, and the exit code is 128 + the signal's number (130,
// 143, 129, 141), whatever the command was doing.
func runMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &mutable{w: stderr}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdin, stdout, errOut) }()
	var sig os.Signal
	exited := false
	select {
	case code := <-done:
		exited = true
		// A write to a closed pipe fails with EPIPE (run says so with
		// exitBrokenPipe) and raises SIGPIPE, in either order.
		if code == exitBrokenPipe {
			sig = syscall.SIGPIPE
			break
		}
		select {
		case sig = <-sigs:
		default:
			return code
		}
	case sig = <-sigs:
	}
	// The command's own error ("context canceled") is not the news.
	errOut.mute()
	cancel()
	if !exited {
		select {
		case <-done:
		case <-time.After(interruptGrace):
		}
	}
	tempfile.Cleanup()
	fmt.Fprintf(stderr, "%s: interrupted by %s; temporary files removed\n", programName, signalName(sig))
	return 128 + int(sig.(syscall.Signal))
}

func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE (broken pipe)"
	}
	return sig.String()
}

// mutable is a writer that can be silenced once the command is being
// interrupted.
type mutable struct {
	mu    sync.Mutex
	w     io.Writer
	muted bool
}

func (m *mutable) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.muted {
		return len(p), nil
	}
	return m.w.Write(p)
}

func (m *mutable) mute() {
	m.mu.Lock()
	m.muted = true
	m.mu.Unlock()
}
