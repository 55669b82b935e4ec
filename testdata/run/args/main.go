// Command args prints its arguments and one environment variable, then
// exits with the status given as its first argument.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	for i, a := range os.Args[1:] {
		fmt.Printf("arg %d: %q\n", i+1, a)
	}
	fmt.Printf("VMM_TEST=%q\n", os.Getenv("VMM_TEST"))
	fmt.Fprintln(os.Stderr, "to stderr")
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err == nil {
			os.Exit(n)
		}
	}
}
