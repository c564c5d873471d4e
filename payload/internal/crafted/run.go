package crafted

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/payload"
	"github.com/augen-project/augen/payload/apply"
)

// Result is what one side made of a payload.
type Result struct {
	// Verdict is Accept, Reject, or (augen only) the stricter rule it
	// refused the payload by.
	Verdict string
	// Why is the error or the client's last log lines.
	Why string
	// Partition and Kernel are the SHA-256 of what was rebuilt (the
	// partition's first new_partition_info.size bytes; the kernel file as
	// truncated), with KernelSize; set when the operations ran to the end,
	// even if the hashes then did not match the manifest.
	Partition, Kernel string
	KernelSize        int64
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func (c *Case) hasKernel() bool {
	for _, p := range c.M.Procedures {
		if p.Type != nil && p.GetType() == payload.ProcKernel {
			return true
		}
	}
	return false
}

// files writes the running partition and kernel into dir.
func (c *Case) files(dir string) (part, kernel string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	part = filepath.Join(dir, "partition")
	if err := os.WriteFile(part, c.Old, 0o600); err != nil {
		return "", "", err
	}
	// A full update starts from a copy of a running partition at least as
	// large as what it installs; a delta's running partition is exactly
	// c.Old (the machine: reads past it fail, and the client hashes all of
	// it).
	if n := int64(c.M.GetNewPartitionInfo().GetSize()); c.M.OldPartitionInfo == nil && n > int64(len(c.Old)) {
		if err := os.Truncate(part, n); err != nil {
			return "", "", err
		}
	}
	if c.hasKernel() {
		kernel = filepath.Join(dir, "kernel")
		if err := os.WriteFile(kernel, c.OldKernel, 0o600); err != nil {
			return "", "", err
		}
	}
	return part, kernel, nil
}

// Augen runs augen's simulated apply (payload/apply.Simulate) on b.
func (c *Case) Augen(ctx context.Context, b []byte, dir string) Result {
	part, kernel, err := c.files(dir)
	if err != nil {
		return Result{Verdict: Reject, Why: err.Error()}
	}
	pr, err := payload.NewReader(bytes.NewReader(b), nil)
	if err != nil {
		return verdictOf(err)
	}
	src := apply.Sources{TempDir: dir, Kernel: kernel}
	if c.M.OldPartitionInfo != nil {
		src.Partition, src.PartitionSize = part, uint64(len(c.Old))
	}
	rebuilt, err := apply.Simulate(ctx, pr, src)
	r := verdictOf(err)
	for _, x := range rebuilt {
		switch x.Name {
		case "partition":
			r.Partition = hex.EncodeToString(x.SHA256[:])
		case payload.ProcKernel.String():
			r.Kernel = hex.EncodeToString(x.SHA256[:])
			r.KernelSize = int64(x.Size)
		}
	}
	return r
}

func verdictOf(err error) Result {
	switch {
	case err == nil:
		return Result{Verdict: Accept}
	case augen.StricterRule(err) != "":
		return Result{Verdict: augen.StricterRule(err), Why: err.Error()}
	case errors.Is(err, augen.ErrRejected):
		return Result{Verdict: Reject, Why: err.Error()}
	}
	return Result{Verdict: "error", Why: err.Error()}
}

// Client runs the real client's apply on b: delta_generator-apply from
// the directory bin (its bspatch first on PATH), in place on copies of the
// running partition and kernel, then compares what it rebuilt with the
// manifest's new hashes as the client does after an update.
func (c *Case) Client(ctx context.Context, bin string, b []byte, dir string) Result {
	part, kernel, err := c.files(dir)
	if err != nil {
		return Result{Verdict: "error", Why: err.Error()}
	}
	if err := runClient(ctx, bin, b, part, kernel, dir); err != nil {
		var ce *ClientError
		if errors.As(err, &ce) {
			return Result{Verdict: Reject, Why: ce.Log}
		}
		return Result{Verdict: "error", Why: err.Error()}
	}
	pb, err := os.ReadFile(part)
	if err != nil {
		return Result{Verdict: "error", Why: err.Error()}
	}
	size := c.M.GetNewPartitionInfo().GetSize()
	if uint64(len(pb)) < size {
		return Result{Verdict: Reject, Why: fmt.Sprintf("the partition is %d bytes, shorter than new_partition_info.size", len(pb))}
	}
	r := Result{Verdict: Accept, Partition: hexSum(pb[:size])}
	if kernel != "" {
		kb, err := os.ReadFile(kernel)
		if err != nil {
			return Result{Verdict: "error", Why: err.Error()}
		}
		r.Kernel, r.KernelSize = hexSum(kb), int64(len(kb))
	}
	if !c.matches(r) {
		r.Verdict, r.Why = Reject, "applied, but the result is not what the manifest's new hashes say"
	}
	return r
}

// ClientError is the client's refusal of a payload: it ended with a
// non-zero status (134 for a failed CHECK); Log is the end of its log.
type ClientError struct {
	Status int
	Log    string
}

func (e *ClientError) Error() string {
	return fmt.Sprintf("the client refused the payload (status %d): %s", e.Status, e.Log)
}

// RunClient applies payload b in place to the files part and kernel
// ("" for none) with the client's own code: delta_generator-apply from
// bin, with bin's bspatch first on PATH and a fresh prefs directory. A
// refusal is a *ClientError.
func RunClient(ctx context.Context, bin string, b []byte, part, kernel, dir string) error {
	return runClient(ctx, bin, b, part, kernel, dir)
}

func runClient(ctx context.Context, bin string, b []byte, part, kernel, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pf := filepath.Join(dir, "payload")
	if err := os.WriteFile(pf, b, 0o600); err != nil {
		return err
	}
	defer os.Remove(pf)
	prefs, err := os.MkdirTemp(dir, "prefs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(prefs)
	args := []string{"-in_file", pf, "-old_image", part, "-prefs_dir", prefs}
	if kernel != "" {
		args = append(args, "-old_kernel", kernel)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "delta_generator-apply"), args...)
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &ClientError{Status: ee.ExitCode(), Log: tail(out)}
		}
		return err
	}
	return nil
}

// ClientApply applies payload b with the client's own code (see Client)
// to a copy of the running partition oldPart (extended to size bytes) and
// of the running kernel oldKernel (nil: no kernel target), and returns
// what the client left in both: the partition's first size bytes, the
// kernel file as the client truncated it.
func ClientApply(ctx context.Context, bin string, b, oldPart, oldKernel []byte, size int64, dir string) (part, kernel []byte, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	pp := filepath.Join(dir, "partition")
	if err := os.WriteFile(pp, oldPart, 0o600); err != nil {
		return nil, nil, err
	}
	defer os.Remove(pp)
	if size > int64(len(oldPart)) {
		if err := os.Truncate(pp, size); err != nil {
			return nil, nil, err
		}
	}
	kp := ""
	if oldKernel != nil {
		kp = filepath.Join(dir, "kernel")
		if err := os.WriteFile(kp, oldKernel, 0o600); err != nil {
			return nil, nil, err
		}
		defer os.Remove(kp)
	}
	if err := runClient(ctx, bin, b, pp, kp, dir); err != nil {
		return nil, nil, err
	}
	if part, err = os.ReadFile(pp); err != nil {
		return nil, nil, err
	}
	if int64(len(part)) < size {
		return nil, nil, fmt.Errorf("the client left a %d-byte partition, shorter than %d", len(part), size)
	}
	if kp != "" {
		if kernel, err = os.ReadFile(kp); err != nil {
			return nil, nil, err
		}
	}
	return part[:size], kernel, nil
}

// matches reports whether r's hashes are the manifest's.
func (c *Case) matches(r Result) bool {
	if hex.EncodeToString(c.M.GetNewPartitionInfo().GetHash()) != r.Partition {
		return false
	}
	for _, p := range c.M.Procedures {
		if p.Type != nil && p.GetType() == payload.ProcKernel && r.Kernel != "" {
			ni := p.GetNewInfo()
			if ni.GetSize() == 0 && len(ni.GetHash()) == 0 {
				continue // KernelVerifierAction: "a new kernel was never installed"
			}
			if hex.EncodeToString(ni.GetHash()) != r.Kernel || int64(ni.GetSize()) != r.KernelSize {
				return false
			}
		}
	}
	return true
}

// SetRebuilt sets the manifest's new hashes to r's.
func (c *Case) SetRebuilt(r Result) {
	if h, err := hex.DecodeString(r.Partition); err == nil && len(h) == 32 {
		c.M.NewPartitionInfo.Hash = h
	}
	for _, p := range c.M.Procedures {
		if p.Type != nil && p.GetType() == payload.ProcKernel && r.Kernel != "" {
			h, _ := hex.DecodeString(r.Kernel)
			p.NewInfo = &payload.InstallInfo{Size: proto.Uint64(uint64(r.KernelSize)), Hash: h}
		}
	}
}

func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	return strings.Join(lines, " | ")
}

// Outcome is one comparison of augen with the client.
type Outcome struct {
	Augen, Client Result
	// Agree: both accept with the same bytes, both refuse, or augen
	// refuses under a stricter rule.
	Agree bool
}

// Compare runs c through the client and augen on the same running system.
// Unless c.KeepHashes, the manifest's new hashes are first set to what
// the client rebuilt (the operations do not depend on them), so that an
// accepted payload is one the client installs and augen must rebuild the
// same bytes to accept it.
func Compare(ctx context.Context, bin string, c *Case, dir string) (Outcome, error) {
	c = c.Clone()
	b, err := c.Payload()
	if err != nil {
		return Outcome{}, err
	}
	cl := c.Client(ctx, bin, b, filepath.Join(dir, "client"))
	if cl.Verdict == "error" {
		return Outcome{}, fmt.Errorf("running the client: %s", cl.Why)
	}
	if !c.KeepHashes && cl.Partition != "" && cl.Verdict == Reject && cl.Why == "applied, but the result is not what the manifest's new hashes say" {
		c.SetRebuilt(cl)
		if b, err = c.Payload(); err != nil {
			return Outcome{}, err
		}
		cl.Verdict, cl.Why = Accept, ""
	}
	au := c.Augen(ctx, b, filepath.Join(dir, "augen"))
	if au.Verdict == "error" {
		return Outcome{}, fmt.Errorf("running augen: %s", au.Why)
	}
	o := Outcome{Augen: au, Client: cl}
	switch {
	case au.Verdict == Accept:
		o.Agree = cl.Verdict == Accept && au.Partition == cl.Partition && au.Kernel == cl.Kernel
	case au.Verdict == Reject:
		o.Agree = cl.Verdict == Reject
	default: // stricter
		o.Agree = true
	}
	return o, nil
}
