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

They read libuco's own structures through the table of field offsets the
library always carries (uco__gdb_layout, lib/debug.c), so they need no
debug info: a release build works as long as its symbol table is there
(`strip --strip-debug` keeps it; `strip --strip-all` does not).  With
debug info for lib/io.c, `uco tasks` says which IO operation and fd a task
waits for; without, it asks the live program (uco__gdb_wait_details).
`uco bt` points the selected thread's stack pointer, program counter and
callee-saved registers at the task's saved context (what uco__switch
pops: lib/arch/context_*.c, struct first_frame), runs `bt`, and puts every
register back, even when bt fails.  It needs a live process: gdb cannot
write a core file's registers.
"""

import gdb

# enum uco__run_state and uco_task_state (lib/internal.h, include/uco.h).
RUN_NEW, RUN_READY, RUN_RUNNING, RUN_PARKED, RUN_FINISHED = range(5)
RUN_NAMES = {RUN_NEW: "runnable", RUN_READY: "runnable", RUN_RUNNING: "running",
             RUN_PARKED: "waiting", RUN_FINISHED: "done"}
FINAL_NAMES = {1: "done", 2: "failed", 3: "cancelled"}

# What uco__switch saves, per architecture (lib/arch/context_*.c, struct
# first_frame, laid out by the assembly): the offset of each callee-saved
# register in the saved frame, the offset of the return address and the
# register that gets it, the stack pointer's name, and the frame's size.
FRAMES = {
    "x86-64": ({"r15": 8, "r14": 16, "r13": 24, "r12": 32, "rbx": 40, "rbp": 48},
               56, "rip", "rsp", 64),
    "aarch64": (dict(("x%d" % n, 8 * (n - 19)) for n in range(19, 31)),
                88, "pc", "sp", 160),
}


class _Layout:
    """libuco's field offsets, read once from its uco__gdb_layout table."""

    fields = None

    @classmethod
    def get(cls):
        if cls.fields is None:
            try:
                table = int(gdb.parse_and_eval("(unsigned long)&uco__gdb_layout"))
            except gdb.error:
                raise gdb.GdbError("uco: libuco's symbol table is missing (no uco__gdb_layout:"
                                   " the library was stripped with --strip-all?)")
            fields = {}
            ptr = _ptr_size()
            while True:
                name = _read(table, ptr)
                if not name:
                    break
                key = _cstr(name)
                fields[key] = (_read(table + ptr, 4), _read(table + ptr + 4, 4))
                table += ptr + 8  # name, offset, size
            cls.fields = fields
        return cls.fields


# Another program (or library) loaded: its offsets may differ.
gdb.events.new_objfile.connect(lambda event: setattr(_Layout, "fields", None))


def _ptr_size():
    return gdb.lookup_type("void").pointer().sizeof


def _read(addr, size):
    data = gdb.selected_inferior().read_memory(addr, size)
    return int.from_bytes(bytes(data), "little")


def _cstr(addr):
    return gdb.Value(addr).cast(gdb.lookup_type("char").pointer()).string()


def _get(obj, field):
    """obj's field ("uco_task.run_state"), obj an address."""
    offset, size = _Layout.get()[field]
    return _read(obj + offset, size)


def _eval_addr(expr):
    """The address an expression names, typed or not (a global of a program
    without debug info has no type: cast it, as gdb asks)."""
    try:
        return int(gdb.parse_and_eval(expr))
    except gdb.error:
        return int(gdb.parse_and_eval("(unsigned long)(%s)" % expr))


def _loop(arg):
    """The loop named by the argument, or the selected thread's."""
    if arg.strip():
        return _eval_addr(arg)
    # coro.c's thread-local; needs gdb's thread-local support (libthread_db).
    for expr in ("(unsigned long)uco__tls_running", "(unsigned long)tls_running",
                 "(unsigned long)uco_loop_current()"):
        try:
            return int(gdb.parse_and_eval(expr))
        except gdb.error as e:
            err = e
    raise gdb.GdbError("uco: cannot find this thread's loop (%s); name one: uco tasks LOOP" % err)


def _tasks(loop):
    """The loop's tasks, oldest first (its list is pushed at the head)."""
    tasks = []
    t = _get(loop, "uco_loop.all_tasks")
    while t:
        tasks.append(t)
        t = _get(t, "uco_task.all_next")
    return list(reversed(tasks))


def _state(t):
    run = _get(t, "uco_task.run_state")
    if run == RUN_FINISHED:
        return FINAL_NAMES.get(_get(t, "uco_task.state"), "done")
    return RUN_NAMES.get(run, "?")


def _io_details(t):
    """ "read fd 5": from lib/io.c's struct op and its table of names (with
    debug info), else from the live program."""
    try:
        op = gdb.Value(_get(t, "uco_task.wait_data")).cast(
            gdb.lookup_type("struct op").pointer())
        opcode = int(op["opcode"])
        try:
            what = gdb.parse_and_eval("op_names")[opcode].string()
        except gdb.error:
            what = "opcode %d" % opcode
        return what + " fd %d" % int(op["fd"])
    except gdb.error:
        pass
    try:
        return gdb.parse_and_eval(
            "(const char *)uco__gdb_wait_details((void *)0x%x)" % t).string()
    except gdb.error:
        return ""  # a core file: nothing runs


def _blocked_on(t):
    run = _get(t, "uco_task.run_state")
    if run == RUN_NEW:
        return "not started"
    why = _get(t, "uco_task.why")
    if run != RUN_PARKED or not why:
        return ""
    what = _cstr(_get(why, "uco__wait_kind.name"))
    if what in ("await", "shield"):
        what += " task 0x%x" % _get(t, "uco_task.awaiting")
    elif what == "io":
        details = _io_details(t)
        if details:
            what += " " + details
    if _get(t, "uco_task.timer_bucket"):
        what += ", with a deadline"
    return what


def _fn(t):
    """ "0x401136 <sleeper>", as gdb prints a function pointer; from the
    symbol table when there is no debug info."""
    fn = _get(t, "uco_task.fn")
    try:
        where = gdb.execute("info symbol 0x%x" % fn, to_string=True)
        name = where.split(" in section ")[0].replace(" + ", "+")
        if not where.startswith("No symbol"):
            return "0x%x <%s>" % (fn, name)
    except gdb.error:
        pass
    return "0x%x" % fn


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
        if not loop:
            raise gdb.GdbError("uco: no loop runs on this thread; name one: uco tasks LOOP")
        current = _get(loop, "uco_loop.current")
        tasks = _tasks(loop)
        print("loop 0x%x: %d tasks, %d unfinished" % (loop, len(tasks),
                                                      _get(loop, "uco_loop.live")))
        for t in tasks:
            mark = "*" if t == current else " "
            print("%s task 0x%x  %-9s  %-28s  fn %s" % (mark, t, _state(t),
                                                       _blocked_on(t), _fn(t)))


def _frame_registers(t):
    """The registers to load to stand where the suspended task t stands."""
    arch = gdb.selected_frame().architecture().name()
    key = "x86-64" if "x86-64" in arch else "aarch64" if "aarch64" in arch else None
    if key is None:
        raise gdb.GdbError("uco: bt knows x86_64 and aarch64, not %s" % arch)
    offsets, ret_offset, pc_reg, sp_reg, size = FRAMES[key]
    sp = _get(t, "uco_task.sp")
    regs = {name: _read(sp + off, 8) for name, off in offsets.items()}
    regs[pc_reg] = _read(sp + ret_offset, 8)
    regs[sp_reg] = sp + size
    return regs


def _set(reg, value):
    gdb.execute("set $%s = %d" % (reg, value), to_string=True)


def _backtrace(t, bt_args):
    run = _get(t, "uco_task.run_state")
    if run == RUN_RUNNING:
        print("task 0x%x is running: its frames are the thread's, see bt" % t)
        return
    if run in (RUN_NEW, RUN_FINISHED) or not _get(t, "uco_task.sp"):
        print("task 0x%x has no frames (%s)" % (t, "not started" if run == RUN_NEW else "done"))
        return
    regs = _frame_registers(t)
    # Registers are written in the innermost frame; remember which frame
    # the user had selected.
    level = gdb.selected_frame().level()
    gdb.newest_frame().select()
    saved = {reg: int(gdb.parse_and_eval("(long)$" + reg)) for reg in regs}
    print("task 0x%x (%s), %s:" % (t, _fn(t), _blocked_on(t) or _state(t)))
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
                if _get(t, "uco_task.run_state") in (RUN_READY, RUN_PARKED):
                    _backtrace(t, bt_args)
            return
        _backtrace(_eval_addr(words[0]), bt_args)


class UcoDump(gdb.Command):
    """uco dump [LOOP]: call uco_loop_dump(LOOP, 1) in the program."""

    def __init__(self):
        super().__init__("uco dump", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        loop = _loop(arg)
        gdb.execute("call (int)uco_loop_dump((void *)0x%x, 1)" % loop,
                    to_string=True)


UcoPrefix()
UcoTasks()
UcoBt()
UcoDump()
