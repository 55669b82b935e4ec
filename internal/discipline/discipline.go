// Package discipline checks that guest code can run without the Go runtime:
// no call path from guest functions into the allocator, scheduler, write
// barrier or other runtime services, and no heap escapes.
package discipline

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Forbidden lists runtime entry points that need a live runtime. Reaching
// any of them from guest code is an error.
var Forbidden = []string{
	"runtime.mallocgc", "runtime.newobject", "runtime.growslice", "runtime.makeslice",
	"runtime.makemap", "runtime.mapassign", "runtime.mapaccess", "runtime.newproc",
	"runtime.gcWriteBarrier", "runtime.wbBuf", "runtime.chansend", "runtime.chanrecv",
	"runtime.convT", "runtime.deferproc", "runtime.gopark", "runtime.concatstring",
	"runtime.slicebytetostring", "runtime.stringtoslicebyte", "runtime.systemstack",
	"runtime.newstack", "runtime.selectgo", "runtime.typedmemmove",
}

// terminal functions are crash paths (a bounds-check failure, or a stack
// check that cannot fire because the fake g's stackguard0 is 0): the walk
// does not follow them; the VMM reports the resulting fault.
func terminal(name string) bool {
	for _, p := range []string{"runtime.panic", "runtime.goPanic", "runtime.morestack", "runtime.throw", "runtime.gopanic"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

type function struct {
	name       string
	start, end uint64
}

// Violation is one forbidden call path.
type Violation struct{ Path []string }

func (v Violation) String() string { return strings.Join(v.Path, " -> ") }

// CheckCalls walks every call and jump from the functions whose names start
// with one of rootPrefixes and reports each path that reaches a forbidden
// runtime function.
func CheckCalls(elfPath string, rootPrefixes []string) ([]Violation, int, error) {
	f, err := elf.Open(elfPath)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	text := f.Section(".text")
	if text == nil {
		return nil, 0, fmt.Errorf("%s: no .text", elfPath)
	}
	code, err := text.Data()
	if err != nil {
		return nil, 0, err
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, 0, err
	}
	var funcs []function
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 && s.Value >= text.Addr && s.Value+s.Size <= text.Addr+text.Size {
			funcs = append(funcs, function{s.Name, s.Value, s.Value + s.Size})
		}
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].start < funcs[j].start })
	lookup := func(pc uint64) *function {
		i := sort.Search(len(funcs), func(i int) bool { return funcs[i].end > pc })
		if i < len(funcs) && funcs[i].start <= pc {
			return &funcs[i]
		}
		return nil
	}
	parent := map[string]string{}
	var queue []*function
	for i := range funcs {
		for _, p := range rootPrefixes {
			if strings.HasPrefix(funcs[i].name, p) {
				parent[funcs[i].name] = ""
				queue = append(queue, &funcs[i])
				break
			}
		}
	}
	var out []Violation
	visited := 0
	for len(queue) > 0 {
		fn := queue[0]
		queue = queue[1:]
		visited++
		body := code[fn.start-text.Addr : fn.end-text.Addr]
		for off := 0; off < len(body); {
			inst, err := x86asm.Decode(body[off:], 64)
			if err != nil {
				off++
				continue
			}
			pc := fn.start + uint64(off)
			off += inst.Len
			if inst.Op != x86asm.CALL && inst.Op != x86asm.JMP {
				continue
			}
			rel, ok := inst.Args[0].(x86asm.Rel)
			if !ok {
				continue
			}
			callee := lookup(uint64(int64(pc) + int64(inst.Len) + int64(rel)))
			if callee == nil || callee == fn {
				continue
			}
			if _, seen := parent[callee.name]; seen || terminal(callee.name) {
				continue
			}
			parent[callee.name] = fn.name
			if forbidden(callee.name) {
				var path []string
				for n := callee.name; n != ""; n = parent[n] {
					path = append([]string{n}, path...)
				}
				out = append(out, Violation{path})
				continue
			}
			queue = append(queue, callee)
		}
	}
	return out, visited, nil
}

func forbidden(name string) bool {
	for _, p := range Forbidden {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// HeapEscapes builds pkg with -gcflags=-m and returns every line that
// reports a heap allocation in files under dirPrefix.
func HeapEscapes(dir, pkg, dirPrefix string, env []string) ([]string, error) {
	cmd := exec.Command("go", "build", "-o", "/dev/null", "-gcflags="+pkg+"=-m", pkg)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go build -gcflags=-m %s: %w\n%s", pkg, err, out)
	}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "escapes to heap") && !strings.Contains(line, "moved to heap") {
			continue
		}
		if strings.HasPrefix(strings.TrimPrefix(line, "./"), dirPrefix) && !strings.Contains(line, "_test.go") {
			bad = append(bad, line)
		}
	}
	return bad, nil
}
