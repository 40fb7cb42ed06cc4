# SPDX-License-Identifier: MIT
"""gdb commands for programs built on uco.

Load with `source /usr/local/share/uco/uco-gdb.py` (or `gdb -x uco-gdb.py`):

    uco tasks [LOOP]     every task of LOOP (default: the loop running on the
                         selected thread): pointer, state, what it waits for,
                         the function it was spawned with
    uco bt [TASK|all]    the backtrace of a suspended task (or of each one)
    uco dump [LOOP]      call uco_loop_dump(LOOP, 1) in the program: the same
                         list, with every detail the library knows (live
                         processes only)

They read libuco's own structures, so libuco needs its debug info (uco's
default buildtype, debugoptimized, has it).  `uco bt` points the selected
thread's stack pointer, program counter and callee-saved registers at the
task's saved context (lib/arch/context_*.c, struct first_frame: what
uco__switch pops), runs `bt`, and puts every register back, even when bt
fails.  It needs a live process: gdb cannot write a core file's registers.
"""

import gdb

# enum uco__run_state and uco_task_state (lib/internal.h, include/uco.h).
RUN_NEW, RUN_READY, RUN_RUNNING, RUN_PARKED, RUN_FINISHED = range(5)
RUN_NAMES = {RUN_NEW: "runnable", RUN_READY: "runnable", RUN_RUNNING: "running",
             RUN_PARKED: "waiting", RUN_FINISHED: "done"}
FINAL_NAMES = {1: "done", 2: "failed", 3: "cancelled"}

# What uco__switch saves, per architecture: the registers of struct
# first_frame, and the register that gets its return address.
FRAMES = {
    "x86-64": (["r15", "r14", "r13", "r12", "rbx", "rbp"], "ret", "rip", "rsp"),
    "aarch64": (["x%d" % n for n in range(19, 31)], "x30", "pc", "sp"),
}


def _task_ptr_type():
    try:
        return gdb.lookup_type("struct uco_task").pointer()
    except gdb.error:
        raise gdb.GdbError("uco: no debug info for libuco (struct uco_task is unknown)")


def _loop(arg):
    """The loop named by the argument, or the selected thread's."""
    loop_type = gdb.lookup_type("struct uco_loop").pointer()
    if arg.strip():
        return gdb.parse_and_eval(arg).cast(loop_type)
    # loop.c's thread-local; needs gdb's thread-local support (libthread_db).
    try:
        loop = gdb.parse_and_eval("tls_running")
        return loop.cast(loop_type)
    except gdb.error:
        pass
    try:
        return gdb.parse_and_eval("uco_loop_current()").cast(loop_type)
    except gdb.error as e:
        raise gdb.GdbError("uco: cannot find this thread's loop (%s); name one: uco tasks LOOP" % e)


def _tasks(loop):
    """The loop's tasks, oldest first (its list is pushed at the head)."""
    tasks = []
    t = loop["all_tasks"]
    while int(t):
        tasks.append(t)
        t = t["all_next"]
    return list(reversed(tasks))


def _state(t):
    run = int(t["run_state"])
    if run == RUN_FINISHED:
        return FINAL_NAMES.get(int(t["state"]), "done")
    return RUN_NAMES.get(run, "?")


def _blocked_on(t):
    run = int(t["run_state"])
    if run == RUN_NEW:
        return "not started"
    if run != RUN_PARKED or not int(t["why"]):
        return ""
    what = t["why"]["name"].string()
    if what in ("await", "shield"):
        what += " task 0x%x" % int(t["awaiting"])
    elif what == "io":
        # lib/io.c's struct op and its table of names.
        try:
            op = t["wait_data"].cast(gdb.lookup_type("struct op").pointer())
            opcode = int(op["opcode"])
            try:
                what += " " + gdb.parse_and_eval("op_names")[opcode].string()
            except gdb.error:
                what += " opcode %d" % opcode
            what += " fd %d" % int(op["fd"])
        except gdb.error:
            pass
    if int(t["timer_bucket"]):
        what += ", with a deadline"
    return what


def _fn(t):
    # A function pointer prints as "0x401136 <sleeper>".
    return str(t["fn"])


class UcoPrefix(gdb.Command):
    """Commands for uco programs: uco tasks, uco bt, uco dump."""

    def __init__(self):
        super().__init__("uco", gdb.COMMAND_USER, prefix=True)


class UcoTasks(gdb.Command):
    """uco tasks [LOOP]: list the tasks of LOOP (default: this thread's loop)."""

    def __init__(self):
        super().__init__("uco tasks", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        loop = _loop(arg)
        if not int(loop):
            raise gdb.GdbError("uco: no loop runs on this thread; name one: uco tasks LOOP")
        current = int(loop["current"])
        tasks = _tasks(loop)
        print("loop 0x%x: %d tasks, %d unfinished" % (int(loop), len(tasks), int(loop["live"])))
        for t in tasks:
            mark = "*" if int(t) == current else " "
            print("%s task 0x%x  %-9s  %-28s  fn %s" % (mark, int(t), _state(t),
                                                       _blocked_on(t), _fn(t)))


def _frame_registers(t):
    """The registers to load to stand where the suspended task t stands."""
    arch = gdb.selected_frame().architecture().name()
    key = "x86-64" if "x86-64" in arch else "aarch64" if "aarch64" in arch else None
    if key is None:
        raise gdb.GdbError("uco: bt knows x86_64 and aarch64, not %s" % arch)
    names, ret_field, pc_reg, sp_reg = FRAMES[key]
    try:
        frame_type = gdb.lookup_type("struct first_frame")
    except gdb.error:
        raise gdb.GdbError("uco: no debug info for lib/arch (struct first_frame)")
    f = t["sp"].cast(frame_type.pointer()).dereference()
    regs = {name: int(f[name]) for name in names}
    regs[pc_reg] = int(f[ret_field])
    regs[sp_reg] = int(t["sp"]) + frame_type.sizeof
    return regs


def _set(reg, value):
    gdb.execute("set $%s = %d" % (reg, value), to_string=True)


def _backtrace(t, bt_args):
    run = int(t["run_state"])
    if run == RUN_RUNNING:
        print("task 0x%x is running: its frames are the thread's, see bt" % int(t))
        return
    if run in (RUN_NEW, RUN_FINISHED) or not int(t["sp"]):
        print("task 0x%x has no frames (%s)" % (int(t), "not started" if run == RUN_NEW else "done"))
        return
    regs = _frame_registers(t)
    # Registers are written in the innermost frame; remember which frame
    # the user had selected.
    level = gdb.selected_frame().level()
    gdb.newest_frame().select()
    saved = {reg: int(gdb.parse_and_eval("(long)$" + reg)) for reg in regs}
    print("task 0x%x (%s), %s:" % (int(t), _fn(t), _blocked_on(t) or _state(t)))
    try:
        for reg, value in regs.items():
            _set(reg, value)
        gdb.execute("bt " + bt_args)
    finally:
        for reg, value in saved.items():
            _set(reg, value)
        gdb.execute("frame %d" % level, to_string=True)


class UcoBt(gdb.Command):
    """uco bt TASK|all [BT-ARGS]: backtrace of a suspended task (or of all)."""

    def __init__(self):
        super().__init__("uco bt", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        words = arg.split(None, 1)
        if not words:
            raise gdb.GdbError("usage: uco bt TASK|all [bt arguments]")
        bt_args = words[1] if len(words) > 1 else ""
        if words[0] == "all":
            for t in _tasks(_loop("")):
                if int(t["run_state"]) in (RUN_READY, RUN_PARKED):
                    _backtrace(t, bt_args)
            return
        _backtrace(gdb.parse_and_eval(words[0]).cast(_task_ptr_type()), bt_args)


class UcoDump(gdb.Command):
    """uco dump [LOOP]: call uco_loop_dump(LOOP, 1) in the program."""

    def __init__(self):
        super().__init__("uco dump", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        loop = _loop(arg)
        gdb.execute("call (int)uco_loop_dump((struct uco_loop *)0x%x, 1)" % int(loop),
                    to_string=True)


UcoPrefix()
UcoTasks()
UcoBt()
UcoDump()
