// Command nilderef prints a line, then dereferences nil. On Linux the Go
// runtime turns the SIGSEGV into a panic (status 2); vmm run delivers no
// signals yet, so the kernel ends the program as killed by signal 11.
package main

import "fmt"

type T struct{ x int }

var p *T

func main() {
	fmt.Println("before")
	fmt.Println(p.x)
}
