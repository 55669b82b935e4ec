// Command binarytrees is the benchmarks game's binary-trees (allocate and
// walk perfect binary trees, one long-lived tree throughout), written
// sequentially so that its cost does not depend on GOMAXPROCS. Usage:
// binarytrees [DEPTH] (default 16). The checksums go to stdout, the
// program's own elapsed time to stderr.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

type node struct{ left, right *node }

func bottomUp(depth int) *node {
	if depth <= 0 {
		return &node{}
	}
	return &node{bottomUp(depth - 1), bottomUp(depth - 1)}
}

func (n *node) check() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func main() {
	start := time.Now()
	n := 16
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 4 || v > 24 {
			fmt.Fprintln(os.Stderr, "usage: binarytrees [DEPTH 4..24]")
			os.Exit(2)
		}
		n = v
	}
	const minDepth = 4
	maxDepth := max(n, minDepth+2)
	fmt.Printf("stretch tree of depth %d\t check: %d\n", maxDepth+1, bottomUp(maxDepth+1).check())
	long := bottomUp(maxDepth)
	for d := minDepth; d <= maxDepth; d += 2 {
		iters := 1 << (maxDepth - d + minDepth)
		sum := 0
		for i := 0; i < iters; i++ {
			sum += bottomUp(d).check()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iters, d, sum)
	}
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, long.check())
	fmt.Fprintf(os.Stderr, "binarytrees: %d ms\n", time.Since(start).Milliseconds())
}
