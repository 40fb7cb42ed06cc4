#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tools/uco-gdb.py against gdb_target: `uco tasks` lists the suspended tasks
with what they wait for, `uco bt` shows a suspended task's own frames, and
afterwards the thread's registers are what they were.

usage: test_gdb.py GDB_TARGET UCO_GDB_PY
Works on every build type: uco-gdb.py reads libuco's uco__gdb_layout table,
not DWARF.  Exit 77 (skip) without gdb, without ptrace, without io_uring, or
when the binaries have no symbol table at all (stripped)."""

import re
import shutil
import subprocess
import sys

SKIP = 77


def fail(msg, out):
    print("FAIL: " + msg)
    print("---- gdb output ----")
    print(out)
    sys.exit(1)


def section(out, name):
    """The output between `echo ==name==` and the next marker."""
    m = re.search(r"^==%s==\n(.*?)(?=^==|\Z)" % re.escape(name), out, re.S | re.M)
    return m.group(1) if m else ""


def main():
    target, script = sys.argv[1], sys.argv[2]
    gdb = shutil.which("gdb")
    if not gdb:
        print("gdb not found")
        return SKIP
    marks = []
    for name, cmd in [("tasks", "uco tasks"), ("tasks-loop", "uco tasks the_loop"),
                      ("before", "p/x $sp"), ("bt-sleeping", "uco bt sleeping_task"),
                      ("bt-awaiting", "uco bt awaiting_task"), ("bt-all", "uco bt all"),
                      ("after", "p/x $sp"), ("bt", "bt"), ("dump", "uco dump")]:
        marks += ["-ex", "echo ==%s==\\n" % name, "-ex", cmd]
    cmd = [gdb, "-batch", "-nx", "-x", script, "-ex", "run"] + marks + ["--args", target, "stop"]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=120)
    out = res.stdout
    if "ptrace:" in out or "Operation not permitted" in out:
        print("gdb cannot trace here:\n" + out)
        return SKIP
    if "exited with code 0115" in out:  # 77: no io_uring
        print("io_uring unavailable:\n" + out)
        return SKIP
    # What uco-gdb.py cannot work without: the symbol table (a build with
    # -Db_strip=true, or a library stripped with --strip-all, has none).
    if "symbol table is missing" in out or "No symbol table is loaded" in out:
        print("skipped: the program or libuco has no symbol table "
              "(stripped?), so uco-gdb.py cannot find its structures:\n" + out)
        return SKIP
    m = re.search(r"loop=(0x[0-9a-f]+) sleeping=(0x[0-9a-f]+) awaiting=(0x[0-9a-f]+) "
                  r"locking=(0x[0-9a-f]+) stopping=(0x[0-9a-f]+) reading=(0x[0-9a-f]+) "
                  r"fd=(\d+)", out)
    if not m or "SIGTRAP" not in out:
        fail("the target did not start and stop", out)
    loop, sleeping, awaiting, locking, stopping, reading, fd = m.groups()

    def task_line(text, task):
        lm = re.search(r"^[ *] task %s .*$" % task, text, re.M)
        if not lm:
            fail("no line for task %s" % task, out)
        return lm.group(0)

    for name in ("tasks", "tasks-loop"):
        text = section(out, name)
        if "loop %s: 5 tasks" % loop not in text:
            fail("`%s`: no header for loop %s" % (name, loop), out)
        want = {
            sleeping: ["waiting", "sleep", "<sleeper>"],
            awaiting: ["waiting", "await task %s" % sleeping, "<awaiter>"],
            locking: ["waiting", "mutex", "<locker>"],
            stopping: ["running", "<stopper>"],
            reading: ["waiting", "io read fd %s" % fd, "<reader>"],
        }
        for task, words in want.items():
            line = task_line(text, task)
            for w in words:
                if w not in line:
                    fail("`%s`: '%s' missing from: %s" % (name, w, line), out)
        if not task_line(text, stopping).startswith("*"):
            fail("the running task is not marked", out)

    def frames(text):
        # Without debug info gdb guesses that "uco__trampoline" is Ada
        # and prints it "uco.trampoline".
        return [f.replace(".", "__") for f in
                re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([\w.]+)", text, re.M)]

    bt = frames(section(out, "bt-sleeping"))
    # The task's own frames, innermost first, down to the trampoline, under
    # the library's (uco_sleep, or what it tail-calls in an optimized build).
    want = ["nap_inner", "nap_outer", "sleeper", "task_entry", "uco__trampoline"]
    if [f for f in bt if f in want] != want or not bt or not bt[0].startswith("uco"):
        fail("uco bt sleeping_task: frames %s, want uco_* then %s in order" % (bt, want), out)
    bt = frames(section(out, "bt-awaiting"))
    # uco_await's own frame is gone where the compiler makes its call of
    # uco__await a tail call (-Os): either one shows the wait.
    if not ({"uco_await", "uco__await"} & set(bt)) or "awaiter" not in bt:
        fail("uco bt awaiting_task: frames %s" % bt, out)
    text = section(out, "bt-all")
    for fn in ("nap_inner", "awaiter", "locker", "reader"):
        if fn not in frames(text):
            fail("uco bt all: no %s" % fn, out)
    if "is running" not in text and "stopper" in frames(text):
        fail("uco bt all walked the running task's stack as a suspended one", out)

    # Everything put back: the same stack pointer, the thread's own frames.
    before = re.search(r"\$\d+ = (0x[0-9a-f]+)", section(out, "before"))
    after = re.search(r"\$\d+ = (0x[0-9a-f]+)", section(out, "after"))
    if not before or not after or before.group(1) != after.group(1):
        fail("$sp changed: %s -> %s" % (before and before.group(1), after and after.group(1)), out)
    bt = frames(section(out, "bt"))
    if "gdb_stop_here" not in bt or "stopper" not in bt:
        fail("after uco bt, bt no longer shows where the thread stopped: %s" % bt, out)
    # uco dump: uco_loop_dump() called in the program (its output goes to
    # the program's stdout, which is gdb's here).
    if "uco loop %s: 5 tasks" % loop not in out or "io: read fd %s" % fd not in out:
        fail("uco dump: no dump of loop %s" % loop, out)
    print(out)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
