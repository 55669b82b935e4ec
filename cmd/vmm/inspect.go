package main

import "io"

// cmdInspect is being written (vmm/inspect).
func cmdInspect(args []string, stdout, stderr io.Writer) (int, error) {
	return 2, usagef("inspect: not built yet")
}
