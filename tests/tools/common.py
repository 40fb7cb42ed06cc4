# SPDX-License-Identifier: MIT
"""What the Python test scripts share: failing with a message, and running
the test named on the command line (each script's test_NAME functions)."""
import sys


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run_named(namespace, script, server):
    """Run namespace's test_NAME for the NAME in argv[2], then say ok."""
    tests = {name[5:]: fn for name, fn in namespace.items() if name.startswith("test_")}
    name = sys.argv[2] if len(sys.argv) > 2 else ""
    if name not in tests:
        print(f"usage: {script} {server} {{{','.join(tests)}}}")
        sys.exit(2)
    tests[name]()
    print("ok")
