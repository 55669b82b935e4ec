// Command illegal prints a line and executes UD2: Go's SIGILL handler
// does not turn that into a panic; it prints the signal (with its si_code)
// and the goroutines, and exits with status 2.
package main

import "fmt"

func ud2() // ud2_amd64.s

func main() {
	fmt.Println("before")
	ud2()
}
