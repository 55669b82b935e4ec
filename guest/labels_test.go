package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// workloadTable reads name and labels of each entry of the workloads
// table from workloads.go's syntax (a test binary that referenced the
// table would need the guest's assembly).
func workloadTable(t *testing.T) [][2]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "workloads.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "workloads" {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			el := e.(*ast.CompositeLit).Elts
			name, err1 := strconv.Unquote(el[0].(*ast.BasicLit).Value)
			labels, err2 := strconv.Unquote(el[2].(*ast.BasicLit).Value)
			if err1 != nil || err2 != nil {
				t.Fatalf("workload entry %v: %v %v", el[0], err1, err2)
			}
			out = append(out, [2]string{name, labels})
		}
		return false
	})
	if len(out) < 10 {
		t.Fatalf("found %d workloads in workloads.go", len(out))
	}
	return out
}

// labelTokens returns a workload's checkpoint labels without the
// parenthesised conditions.
func labelTokens(s string) []string {
	s = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(s, "")
	return strings.Fields(s)
}

// TestWorkloadLabels keeps `--workload help`'s checkpoint lists in step
// with the code: every literal checkAndCheckpoint label is listed by a
// workload, every listed label is such a literal or the workload's own
// name (its after-run checkpoint), which comes last.
func TestWorkloadLabels(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	call := regexp.MustCompile(`checkAndCheckpoint\("([^"]+)", `)
	var literals []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range call.FindAllStringSubmatch(string(src), -1) {
			literals = append(literals, m[1])
		}
	}
	if len(literals) < 5 {
		t.Fatalf("found only %d checkpoint labels in the sources: %q", len(literals), literals)
	}
	listed := map[string]bool{}
	for _, w := range workloadTable(t) {
		name, labels := w[0], w[1]
		toks := labelTokens(labels)
		for _, l := range toks {
			listed[l] = true
			if l != name && !slices.Contains(literals, l) {
				t.Errorf("workload %s lists checkpoint %q, which no checkAndCheckpoint call uses", name, l)
			}
		}
		if len(toks) > 0 && toks[len(toks)-1] != name {
			t.Errorf("workload %s: labels %q should end with its own name", name, labels)
		}
	}
	for _, l := range literals {
		if !listed[l] {
			t.Errorf("checkpoint %q is listed by no workload's labels", l)
		}
	}
}
