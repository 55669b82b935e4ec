#!/usr/bin/env python3
"""Regenerates README.md's command-output samples from real runs.

After a guest-kernel change:  make vmm && python3 scripts/readme-samples.py

Each sample is the ``` block right after an anchor line's paragraph; only
those blocks change. Commands are written as README shows them
("$ bin/vmm ... /tmp/x") and run from the repository root with /tmp/x moved
into a temporary directory, whose name is put back as /tmp/ in the output. The map PNG is
copied to docs/inspect-map.png. Any missing anchor, unexpected exit status
or output of the wrong shape stops the script before anything is written.
usage: scripts/readme-samples.py [--readme PATH] [--png PATH]
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAME = re.compile(r"#\d+ ")


def die(msg):
    sys.exit(f"readme-samples: {msg}")


class Runner:
    def __init__(self, tmp):
        self.tmp = tmp

    def run(self, shown, status=0):
        """Runs README command line `shown` ("$ cmd  # comment"); returns
        (stdout, stderr) with the temporary directory shown as /tmp."""
        argv = [self.tmp + a[4:] if a.startswith("/tmp/") else a
                for a in shlex.split(shown[2:], comments=True)]
        if argv[0] == "gdb":
            argv.insert(1, "-nx")  # no gdbinit: a local one may add output
        env = dict(os.environ, LC_ALL="C")  # gdb's messages untranslated
        try:
            p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            die(f"{shown[2:]}: {e}")
        if p.returncode != status:
            die(f"{shown[2:]}: exit status {p.returncode}, want {status}\n"
                f"{p.stderr[-2000:]}")
        return tuple(s.replace(self.tmp, "/tmp") for s in (p.stdout, p.stderr))


def backtrace(out, what):
    """The last run of "#N " lines in gdb's output: the bt (gdb also prints
    frame #0 alone when it loads the core or switches threads)."""
    lines = out.splitlines()
    end = max((i for i, l in enumerate(lines) if FRAME.match(l)), default=-1)
    start = end
    while start > 0 and FRAME.match(lines[start - 1]):
        start -= 1
    bt = lines[start:end + 1]
    if [l.split()[0] for l in bt] != [f"#{i}" for i in range(len(bt))]:
        die(f"{what}: no backtrace #0..#N in gdb's output:\n{out}")
    if len(bt) < 5:  # README shows #0..#2 (or #3) and "...": needs more frames
        die(f"{what}: only {len(bt)} frames, README's sample wants at least 5")
    return bt


def line_from(out, prefix, what):
    lines = out.splitlines()
    for i, l in enumerate(lines):
        if l.startswith(prefix):
            return lines[i:]
    die(f"{what}: no line starting {prefix!r} in:\n{out}")


# The line before each sample, in README order, and how it is matched (the
# third starts a paragraph).
ANCHORS = [
    (str.__eq__, "`bin/vmm boot --workload fault` prints:"),
    (str.endswith, "`LWP 10001` for vCPU 0 (10000 + vCPU + 1):"),
    (str.startswith, "`vmm inspect DUMP` runs the same verification offline"),
    (str.endswith, "as `/proc/buddyinfo` counts them, with a bar for the memory each order holds:"),
]


def samples(r):
    """The four samples' lines, in ANCHORS order."""
    # 1. The crash report: stderr up to the exit summary (the lines after
    # it carry timings).
    err = r.run("$ bin/vmm boot --workload fault", status=121)[1].splitlines()
    end = next((i for i, l in enumerate(err) if l.startswith("vmm: fault: ")), None)
    if end is None:
        die("boot --workload fault: no 'vmm: fault: ' line in stderr")
    fault = err[:end + 1]

    # 2. The fault dump in gdb, abbreviated.
    cmds = ["$ bin/vmm boot --workload fault --dump /tmp/fault.core",
            "$ gdb -batch -ex bt cmd/vmm/kernel/guest.elf /tmp/fault.core",
            "$ gdb -batch -ex 'thread 2' -ex bt cmd/vmm/kernel/guest.elf /tmp/fault.core"]
    r.run(cmds[0], status=121)
    out = r.run(cmds[1])[0]
    term = [l for l in out.splitlines() if l.startswith("Program terminated")]
    if len(term) != 1:
        die(f"gdb bt: want one 'Program terminated' line in:\n{out}")
    bt1 = backtrace(out, "gdb bt")
    bt2 = backtrace(r.run(cmds[2])[0], "gdb thread 2 bt")
    gdb = ([cmds[0], cmds[1]] + term + bt1[:3] + ["...", bt1[-1], cmds[2]]
           + bt2[:4] + ["..."])

    # 3. inspect: a finished guest's report (its tail), then one frame of the
    # cow workload's dump taken while its address spaces are live.
    cmds = ["$ bin/vmm boot --workload paging --dump /tmp/guest.core",
            "$ bin/vmm inspect /tmp/guest.core",
            "$ bin/vmm boot --workload cow --dump /tmp/cow.core --dump-at cow-forked   # live address spaces",
            "$ bin/vmm inspect --frame 0x1a000 /tmp/cow.core                           # one record, and where it is mapped"]
    r.run(cmds[0])
    tail = line_from(r.run(cmds[1])[0], "frames:", "inspect")
    r.run(cmds[2])
    inspect = cmds[:2] + ["..."] + tail + cmds[2:] + r.run(cmds[3])[0].splitlines()

    # 4. The map of that cow dump.
    cmd = "$ bin/vmm inspect --map /tmp/cow.png /tmp/cow.core"
    pngmap = [cmd] + r.run(cmd)[0].splitlines()

    return [fault, gdb, inspect, pngmap]


def find_block(lines, anchor, n):
    """The line range of sample n's content, between its fences."""
    how, text = anchor
    hits = [i for i, l in enumerate(lines) if how(l, text)]
    if len(hits) != 1:
        die(f"sample {n}: anchor line {text!r} found {len(hits)} times, want 1")
    # The block must open right after the anchor's paragraph and one blank
    # line, so a changed README cannot make the script eat unrelated text.
    start = hits[0]
    while start < len(lines) and lines[start] != "":
        start += 1
    start += 1
    if lines[start:start + 1] != ["```"]:
        die(f"sample {n}: no ``` line after the blank line that ends the "
            f"anchor's paragraph (line {hits[0] + 1})")
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("```")), None)
    if end is None or lines[end] != "```":
        die(f"sample {n}: its block (line {start + 1}) has no closing ```")
    return start + 1, end


def write(path, data):
    # Renamed into place, so a failed write never leaves half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "inspect-map.png")
    args = ap.parse_args()
    if not os.access(ROOT / "bin" / "vmm", os.X_OK):
        die(f"{ROOT / 'bin' / 'vmm'} missing: run make vmm first")
    if shutil.which("gdb") is None:
        die("gdb not found (sample 2 is gdb's output)")
    text = args.readme.read_text()
    lines = text.split("\n")
    # Anchors first: a README that no longer fits fails before any run.
    blocks = [find_block(lines, a, n) for n, a in enumerate(ANCHORS, 1)]
    if any(b[0] <= a[1] for a, b in zip(blocks, blocks[1:])):
        die("samples' blocks are not in README order")
    with tempfile.TemporaryDirectory(prefix="readme-samples.") as tmp:
        bodies = samples(Runner(tmp))
        png = (Path(tmp) / "cow.png").read_bytes()
    # Last block first, so the earlier blocks' line numbers still hold.
    for (start, end), body in reversed(list(zip(blocks, bodies))):
        lines[start:end] = body
    write(args.png, png)
    new = "\n".join(lines)
    if new != text:
        write(args.readme, new.encode())
    print(f"readme-samples: {args.readme}: {'updated' if new != text else 'unchanged'}; "
          f"{args.png} written")


if __name__ == "__main__":
    main()
