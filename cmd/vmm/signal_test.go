package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmm-dev/vmm/internal/kvmtest"
	"github.com/vmm-dev/vmm/vmm"
)

// TestSignalsEndTheRunWithAReport sends SIGINT and SIGTERM to a real vmm
// process running a spinning guest: each must still print the JSON summary
// (with where every vCPU was), write the dump, and exit 130 / 143.
func TestSignalsEndTheRunWithAReport(t *testing.T) {
	kvmtest.Require(t)
	for _, c := range []struct {
		sig    syscall.Signal
		status int
	}{{syscall.SIGINT, vmm.StatusSIGINT}, {syscall.SIGTERM, vmm.StatusSIGTERM}} {
		t.Run(c.sig.String(), func(t *testing.T) {
			dump := filepath.Join(t.TempDir(), "core")
			cmd := exec.Command(os.Args[0], "boot", "--kernel", guestPath(t), "--workload", "spin", "--cpus", "2",
				"--json", "--dump", dump, "--timeout", "60s")
			cmd.Env = append(os.Environ(), "VMM_TEST_AS_VMM=1")
			var out bytes.Buffer
			var errb lockedBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal once the guest is spinning (its console says so).
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(errb.String(), "workload spin: start") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cmd.Process.Signal(c.sig)
			err := cmd.Wait()
			st := cmd.ProcessState.ExitCode()
			var sum struct {
				Outcome    string `json:"outcome"`
				ExitStatus int    `json:"exit_status"`
				VCPUs      []struct {
					Where string `json:"where"`
				} `json:"vcpus"`
				Dump *struct {
					Error string `json:"error"`
				} `json:"dump"`
			}
			if jerr := json.Unmarshal(out.Bytes(), &sum); jerr != nil {
				t.Fatalf("exit %d (%v): stdout is not the JSON summary: %v\nstdout %s\nstderr %s", st, err, jerr, out.String(), errb.String())
			}
			if st != c.status || sum.Outcome != vmm.OutcomeSignal || sum.ExitStatus != c.status {
				t.Errorf("exit %d, summary %+v; want %d", st, sum, c.status)
			}
			if len(sum.VCPUs) != 2 || sum.VCPUs[0].Where == "" || sum.VCPUs[1].Where == "" {
				t.Errorf("vCPU locations: %+v", sum.VCPUs)
			}
			if fi, serr := os.Stat(dump); serr != nil || fi.Size() == 0 || sum.Dump == nil || sum.Dump.Error != "" {
				t.Errorf("dump not written: %v %+v", serr, sum.Dump)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer the test may read while exec writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSignalBeforeTheVMExistsIsDelivered: a SIGTERM that arrives while the
// VM is still being built is held and delivered once there is one.
func TestSignalBeforeTheVMExistsIsDelivered(t *testing.T) {
	c := catchSignals()
	defer c.stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the runtime queues it on c.ch
	got := make(chan int, 1)
	c.deliverTo(interruptFunc(func(_ string, status int) { got <- status }))
	select {
	case st := <-got:
		if st != vmm.StatusSIGTERM {
			t.Errorf("interrupted with %d, want %d", st, vmm.StatusSIGTERM)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the early signal was never delivered")
	}
}

type interruptFunc func(reason string, status int)

func (f interruptFunc) Interrupt(reason string, status int) { f(reason, status) }
