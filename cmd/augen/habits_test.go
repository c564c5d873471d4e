package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateHabits = flag.Bool("update-habits", false, "rewrite doc/migrating.md's flag table from habits.go")

// habitsTable is doc/migrating.md's flag table, made from habits.
func habitsTable() string {
	var b strings.Builder
	b.WriteString("| tool | flag | in augen |\n|---|---|---|\n")
	for _, h := range habits {
		b.WriteString("| " + h.tool + " | `" + h.old + "` | " + h.augen + " |\n")
	}
	return b.String()
}

// doc/migrating.md's flag table is habits.go's, row for row: the hints
// and the page cannot drift apart.
func TestHabitsAreTheMigratingTable(t *testing.T) {
	const path = "../../doc/migrating.md"
	const begin, end = "<!-- flag table: made from cmd/augen/habits.go -->\n", "<!-- end of the flag table -->\n"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no flag table between %q and %q", path, begin, end)
	}
	want := doc[:i+len(begin)] + habitsTable() + doc[j:]
	if *updateHabits {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != want {
		t.Fatal("doc/migrating.md's flag table differs from habits.go (go test ./cmd/augen -run HabitsAreTheMigratingTable -update-habits)")
	}
}
