// Command nilderef prints a line, then dereferences nil: the Go runtime's
// SIGSEGV handler turns the fault into a panic nobody recovers, so Go
// prints it and exits with status 2.
package main

import "fmt"

type T struct{ x int }

var p *T

func main() {
	fmt.Println("before")
	fmt.Println(p.x)
}
