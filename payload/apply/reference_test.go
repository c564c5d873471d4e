package apply_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/augen-project/augen/payload/internal/crafted"
)

// The differential tests: augen's verdicts checked against the real
// client's code. AUGEN_UE_TOOLS names the folder of builds of update_engine's
// delta_generator-apply and ChromiumOS bspatch (../shared/tools/update-engine/bin,
// run by scripts/test-reference.sh); without it these tests are skipped,
// and TestCorpusRecorded checks augen against the verdicts and bytes the
// client gave when they were recorded.

const recorded = "testdata/reference.json"

func toolsDir(t *testing.T) string {
	d := os.Getenv("AUGEN_UE_TOOLS")
	if d == "" {
		t.Skip("AUGEN_UE_TOOLS is not set: run scripts/test-reference.sh DIR")
	}
	if _, err := os.Stat(filepath.Join(d, "delta_generator-apply")); err != nil {
		t.Fatalf("AUGEN_UE_TOOLS=%s: %v", d, err)
	}
	return d
}

// clientWant is the client's verdict a case expects: a payload augen is
// stricter about is one the client applies.
func clientWant(c *crafted.Case) string {
	if c.Want == crafted.Reject {
		return crafted.Reject
	}
	return crafted.Accept
}

// augenAgrees reports whether augen's verdict is the case's.
func augenAgrees(c *crafted.Case, got string) bool {
	switch c.Want {
	case crafted.Accept:
		return got == crafted.Accept
	case crafted.Reject:
		return got != crafted.Accept // refused, under any rule
	}
	return got == c.Want
}

// TestReferenceCorpus runs every crafted case through the client and
// augen, and checks both give the verdict the case names, with the same
// bytes where they accept. With AUGEN_UPDATE_REFERENCE=1 it rewrites
// testdata/reference.json, which TestCorpusRecorded checks augen against
// without the client.
func TestReferenceCorpus(t *testing.T) {
	bin := toolsDir(t)
	got := map[string]crafted.Result{}
	rules := map[string]int{}
	for _, c := range crafted.Cases() {
		o, err := crafted.Compare(context.Background(), bin, c, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if o.Client.Verdict != clientWant(c) {
			t.Errorf("%s (%s): the client says %s, the case expects %s: %s", c.Name, c.Class, o.Client.Verdict, clientWant(c), o.Client.Why)
		}
		if !augenAgrees(c, o.Augen.Verdict) {
			t.Errorf("%s (%s): augen says %s, the case expects %s: %s", c.Name, c.Class, o.Augen.Verdict, c.Want, o.Augen.Why)
		}
		if !o.Agree {
			t.Errorf("%s: augen and the client disagree: augen %s (%s) %s; client %s (%s) %s", c.Name, o.Augen.Verdict, o.Augen.Why, o.Augen.Partition, o.Client.Verdict, o.Client.Why, o.Client.Partition)
		}
		if o.Augen.Verdict != crafted.Accept && o.Augen.Verdict != crafted.Reject {
			rules[o.Augen.Verdict]++
		}
		t.Logf("%-40s client %-7s augen %s", c.Name, o.Client.Verdict, o.Augen.Verdict)
		r := o.Client
		r.Why = ""
		got[c.Name] = r
	}
	t.Logf("%d cases compared with the client; stricter refusals by rule: %v", len(got), rules)
	if os.Getenv("AUGEN_UPDATE_REFERENCE") == "1" {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(recorded, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := readRecorded(t); !equalResults(want, got) {
		t.Errorf("%s no longer records what the client does: run with AUGEN_UPDATE_REFERENCE=1 and review the change", recorded)
	}
}

func readRecorded(t *testing.T) map[string]crafted.Result {
	b, err := os.ReadFile(recorded)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]crafted.Result
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func equalResults(a, b map[string]crafted.Result) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCorpusRecorded checks augen against what the client did with every
// crafted case when testdata/reference.json was recorded: the same
// verdict, and for a payload the client installs, the same bytes (augen
// accepts it only if it rebuilds exactly the client's partition and kernel).
func TestCorpusRecorded(t *testing.T) {
	rec := readRecorded(t)
	cases := crafted.Cases()
	if len(cases) < 40 {
		t.Fatalf("only %d crafted cases", len(cases))
	}
	names := map[string]bool{}
	for _, c := range cases {
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			r, ok := rec[c.Name]
			if !ok {
				t.Fatalf("not recorded: run scripts/test-reference.sh with AUGEN_UPDATE_REFERENCE=1")
			}
			if r.Verdict != clientWant(c) {
				t.Fatalf("the client said %s, the case expects %s", r.Verdict, clientWant(c))
			}
			c = c.Clone()
			if r.Verdict == crafted.Accept && !c.KeepHashes {
				c.SetRebuilt(r)
			}
			b, err := c.Payload()
			if err != nil {
				t.Fatal(err)
			}
			a := c.Augen(context.Background(), b, t.TempDir())
			if !augenAgrees(c, a.Verdict) {
				t.Fatalf("augen says %s, the case (and the client) %s: %s", a.Verdict, c.Want, a.Why)
			}
			if a.Verdict == crafted.Accept && (a.Partition != r.Partition || a.Kernel != r.Kernel) {
				t.Fatalf("augen rebuilt %s/%s, the client %s/%s", a.Partition, a.Kernel, r.Partition, r.Kernel)
			}
		})
	}
	for k := range rec {
		if !names[k] {
			t.Errorf("%s records %q, which is no case", recorded, k)
		}
	}
}

// TestReferenceFuzz mutates the accepted cases (operations, extents,
// lengths, hashes, patches and streams) and hands each mutant to the
// client and to augen: they must agree, or augen must refuse it under a
// rule doc/payload-format.md lists as stricter. AUGEN_REF_FUZZ_N mutants
// (default 400) from seed AUGEN_REF_FUZZ_SEED (default 1).
func TestReferenceFuzz(t *testing.T) {
	bin := toolsDir(t)
	n := envInt("AUGEN_REF_FUZZ_N", 400)
	seed := uint64(envInt("AUGEN_REF_FUZZ_SEED", 1))
	r := rand.New(rand.NewPCG(seed, 7))
	var seeds, deltas []*crafted.Case
	for _, c := range crafted.Cases() {
		if c.Want == crafted.Accept && c.Class != "10-work" {
			seeds = append(seeds, c)
			if c.M.OldPartitionInfo != nil {
				deltas = append(deltas, c)
			}
		}
	}
	counts := map[string]int{}
	disagree, machines := 0, 0
	for i := 0; i < n; i++ {
		var m *crafted.Case
		if i%3 == 2 {
			// The machine varied: the running partition and kernel.
			m = crafted.MutateMachine(r, deltas[r.IntN(len(deltas))])
			if r.IntN(2) == 0 {
				m = crafted.Mutate(r, m)
			}
			machines++
		} else {
			m = crafted.Mutate(r, seeds[r.IntN(len(seeds))])
		}
		o, err := crafted.Compare(context.Background(), bin, m, t.TempDir())
		if err != nil {
			t.Fatalf("mutant %d of %s: %v", i, m.Name, err)
		}
		key := "augen " + o.Augen.Verdict + ", client " + o.Client.Verdict
		counts[key]++
		if !o.Agree {
			disagree++
			t.Errorf("mutant %d (seed %d) of %s: augen %s (%s); client %s (%s); partitions %s / %s",
				i, seed, m.Name, o.Augen.Verdict, o.Augen.Why, o.Client.Verdict, o.Client.Why, o.Augen.Partition, o.Client.Partition)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%5d  %s", counts[k], k)
	}
	t.Logf("%d mutants compared with the client (seed %d), %d of them with the machine varied: %d disagreements", n, seed, machines, disagree)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
