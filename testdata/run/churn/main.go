// Command churn runs goroutines that talk over channels and allocate far
// more in total than they keep live, with explicit collections.
package main

import (
	"fmt"
	"runtime"
	"sync"
)

func main() {
	const workers, rounds, size = 4, 768, 1 << 20 // 3 GiB allocated in total
	results := make(chan int, workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			sum := 0
			for r := 0; r < rounds; r++ {
				b := make([]byte, size)
				b[r%size] = byte(w + r)
				sum += int(b[r%size])
				if r%50 == 0 {
					runtime.GC()
				}
			}
			mu.Lock()
			total += sum
			mu.Unlock()
			results <- sum
		}(w)
	}
	wg.Wait()
	close(results)
	n := 0
	for s := range results {
		n += s
	}
	fmt.Println("workers", workers, "rounds", rounds, "sum", n, total == n)
}
