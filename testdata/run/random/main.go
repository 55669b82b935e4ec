// Command random reads from crypto/rand (getrandom) and checks the bytes
// are not all zero and differ between two reads.
package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
)

func main() {
	a, b := make([]byte, 5000), make([]byte, 5000) // more than a page: two chunks
	rand.Read(a)
	rand.Read(b)
	fmt.Println("read", len(a)+len(b), "bytes; nonzero:", !bytes.Equal(a, make([]byte, len(a))), "differ:", !bytes.Equal(a, b))
}
