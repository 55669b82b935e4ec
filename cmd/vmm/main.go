// Command vmm boots the Go guest kernel on KVM and verifies its memory.
//
//	vmm boot [flags]      boot the guest (embedded, or --kernel FILE)
//	vmm inspect DUMP      verify a dump offline
//	vmm bench [flags]     time the allocator in the guest and on the host
//	vmm version           module version, VCS revision, Go, guest build id
//	vmm help [CMD]        this text, or CMD's flags
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
	case "run":
		status, err = cmdRun(args[1:], stdout, stderr)
	case "inspect":
		status, err = cmdInspect(args[1:], stdout, stderr)
	case "bench":
		status, err = cmdBench(args[1:], stdout, stderr)
	case "version", "--version":
		status, err = cmdVersion(args[1:], stdout)
	case "help", "-h", "--help":
		status, err = cmdHelp(args[1:], stdout)
	default:
		err = usagef("unknown command %q (commands: %s)", args[0], strings.Join(commands, ", "))
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

// commands are the subcommands, in the order usage lists them.
var commands = []string{"boot", "run", "inspect", "bench", "version", "help"}

// cmdHelp prints the overview, or one command's flags, on stdout.
func cmdHelp(args []string, stdout io.Writer) (int, error) {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, usage())
		return 0, nil
	case len(args) > 1:
		return vmm.StatusUsage, usagef("help takes one command, got %q", args)
	}
	switch args[0] {
	case "boot", "run", "inspect":
		// Each command prints its flags for -h; send them to stdout.
		return run([]string{args[0], "-h"}, stdout, stdout), nil
	case "bench": // two flag sets: the allocator bench and --floors
		run([]string{"bench", "-h"}, stdout, stdout)
		fmt.Fprintln(stdout)
		return run([]string{"bench", "--floors", "-h"}, stdout, stdout), nil
	case "version":
		fmt.Fprintln(stdout, "usage: vmm version\n  prints the module version, VCS revision, Go version and the embedded guest's build id")
		return 0, nil
	case "help":
		fmt.Fprintln(stdout, "usage: vmm help [COMMAND]")
		return 0, nil
	}
	return vmm.StatusUsage, usagef("unknown command %q (commands: %s)", args[0], strings.Join(commands, ", "))
}

func usage() string {
	return `vmm: a micro-VM monitor that boots a Go guest kernel on KVM and verifies
its page allocator from the host.

Commands:
  vmm boot [flags]    boot the guest (exit statuses below)
  vmm run [flags] PROG [ARGS...]
                      run a static x86-64 Linux program as the guest kernel's
                      user process; its exit status is vmm's (0..119; one above
                      119, or a signal that kills it, ends with ` + fmt.Sprint(vmm.StatusFault) + `)
  vmm inspect [--json] [--frame ADDR] [--map FILE.png] FILE
                      verify a dump written by vmm boot --dump, offline
                      (0 clean, ` + fmt.Sprint(vmm.StatusViolation) + ` violations, ` + fmt.Sprint(vmm.StatusVMMError) + ` unreadable dump)
  vmm bench [flags]   time guest/mm's loops in the guest and on the host
  vmm version         module version, VCS revision, Go version, guest build id
  vmm help [COMMAND]  this text, or COMMAND's flags ("vmm help boot")

Exit statuses:
` + vmm.StatusHelp("  ") + ``
}
