// Command threads exercises what a Go program's threads share: goroutines
// passing work over channels, a sync.Mutex-guarded map, a WaitGroup, and
// timers and a ticker. With GOMAXPROCS > 1 the goroutines run on several
// threads at once. Its output does not depend on scheduling.
package main

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

func main() {
	// A pipeline: producers -> squarers -> one collector.
	const producers, perProducer, squarers = 4, 2000, 3
	in := make(chan int, 64)
	out := make(chan int)
	var prod sync.WaitGroup
	for p := 0; p < producers; p++ {
		prod.Add(1)
		go func(p int) {
			defer prod.Done()
			for i := 0; i < perProducer; i++ {
				in <- p*perProducer + i
			}
		}(p)
	}
	go func() { prod.Wait(); close(in) }()
	var sq sync.WaitGroup
	for s := 0; s < squarers; s++ {
		sq.Add(1)
		go func() {
			defer sq.Done()
			for v := range in {
				out <- v * v % 1000003
			}
		}()
	}
	go func() { sq.Wait(); close(out) }()
	sum, n := 0, 0
	for v := range out {
		sum += v
		n++
	}
	fmt.Println("pipeline:", n, "values, sum", sum)

	// A mutex-guarded map, updated by many goroutines.
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				mu.Lock()
				counts[(g*7+i)%10]++
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Printf("key %d: %d\n", k, counts[k])
	}

	// Timers: each fires, no earlier than asked, and a stopped one never
	// does. (Not the order they fire in: under load even the host can run
	// the callbacks of timers 60 ms apart in either order.)
	type shot struct {
		ms   int
		late bool
	}
	fired := make(chan shot, 4)
	begin := time.Now()
	for _, ms := range []int{140, 20, 80} {
		d := time.Duration(ms) * time.Millisecond
		time.AfterFunc(d, func() { fired <- shot{ms, time.Since(begin) >= d} })
	}
	stopped := time.AfterFunc(50*time.Millisecond, func() { fired <- shot{50, true} })
	fmt.Println("stopped before firing:", stopped.Stop())
	got := []int{}
	onTime := true
	for range 3 {
		s := <-fired
		got = append(got, s.ms)
		onTime = onTime && s.late
	}
	sort.Ints(got)
	fmt.Println("timers fired:", got, "none early:", onTime)
	select {
	case s := <-fired:
		fmt.Println("a stopped timer fired:", s.ms)
	default:
	}
	tk := time.NewTicker(5 * time.Millisecond)
	ticks := 0
	deadline := time.After(5 * time.Second)
	for ticks < 10 {
		select {
		case <-tk.C:
			ticks++
		case <-deadline:
			fmt.Println("ticker too slow")
			return
		}
	}
	tk.Stop()
	start := time.Now()
	time.Sleep(15 * time.Millisecond)
	fmt.Println("ticks:", ticks, "slept enough:", time.Since(start) >= 15*time.Millisecond)
}
