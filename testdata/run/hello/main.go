// Command hello is the smallest vmm run test: fmt, one write, exit 0.
package main

import "fmt"

func main() { fmt.Println("hello, world") }
