// Command sigpipe writes lines to stdout until its reader goes away: like
// any Go program it then dies of SIGPIPE (runtime.dieFromSignal).
package main

import "fmt"

func main() {
	for i := 0; ; i++ {
		fmt.Println("line", i)
	}
}
