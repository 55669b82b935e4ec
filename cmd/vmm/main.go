// Command vmm boots the Go guest kernel on KVM and verifies its memory.
//
//	vmm boot [flags]      boot the guest (embedded, or --kernel FILE)
//	vmm help              this text
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmm-dev/vmm/vmm"
)

// processStart approximates process start for the start-to-entry figure.
var processStart = time.Now()

// usageError is a bad flag or argument: one line on stderr, vmm.StatusUsage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return vmm.StatusUsage
	}
	var status int
	var err error
	switch args[0] {
	case "boot":
		status, err = cmdBoot(args[1:], stdout, stderr)
	case "inspect":
		status, err = cmdInspect(args[1:], stdout, stderr)
	case "bench":
		status, err = cmdBench(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return 0
	default:
		err = usagef("unknown command %q (commands: boot, inspect, bench, help)", args[0])
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "vmm %s: %v\n", args[0], err)
		return vmm.StatusUsage
	case err != nil:
		fmt.Fprintf(stderr, "vmm %s: %v\n", args[0], err)
		if status == 0 {
			status = vmm.StatusVMMError
		}
	}
	return status
}

func usage() string {
	return `vmm: a micro-VM monitor that boots a Go guest kernel on KVM and verifies
its page allocator from the host.

Commands:
  vmm boot [flags]    boot the guest (exit statuses below)
  vmm inspect [--json] [--frame ADDR] [--map FILE.png] FILE
                      verify a dump written by vmm boot --dump, offline
                      (0 clean, ` + fmt.Sprint(vmm.StatusViolation) + ` violations, ` + fmt.Sprint(vmm.StatusVMMError) + ` unreadable dump)
  vmm bench [flags]   time guest/mm's loops in the guest and on the host
  vmm help            this text

Exit statuses:
` + vmm.StatusHelp("  ") + `
Run "vmm boot -h" for the flags.
`
}
