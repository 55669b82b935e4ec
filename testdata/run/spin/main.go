// Command spin keeps GOMAXPROCS goroutines busy with arithmetic and no
// allocation, then prints their results: the wall time scales with the
// CPUs it runs on (vmm run --cpus N; BENCHMARKS.md). The first argument
// is the work per goroutine in millions of rounds (default 200).
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

func work(seed, rounds uint64) uint64 {
	x := seed
	for i := uint64(0); i < rounds; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func main() {
	millions := uint64(200)
	if len(os.Args) > 1 {
		m, err := strconv.ParseUint(os.Args[1], 10, 64)
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		millions = m
	}
	const workers = 2
	res := make([]uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[w] = work(uint64(w)+0x9e3779b97f4a7c15, millions*1000000)
		}()
	}
	wg.Wait()
	for w, r := range res {
		fmt.Printf("worker %d: %#x\n", w, r)
	}
}
