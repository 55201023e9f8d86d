#!/usr/bin/env python3
"""check_layers - no call circle between the files of one module.

Reads the symbols of a static library's members (nm) and fails when one
member calls a function of another that, directly or through others,
calls back into it: mta/deliver/deliver_int.h names the layers, and
upcalls go through registered callbacks, not by name.

  check_layers.py LIBRARY.a
"""

import subprocess
import sys


def members(lib):
    out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True,
                         check=True).stdout
    defs, undef = {}, {}
    for line in out.splitlines():
        # "lib.a:member.o:0000 T name" or "lib.a:member.o:         U name"
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        member, f = parts[1], parts[2].split()
        if len(f) == 3 and f[1] in "TDBR":
            defs.setdefault(member, set()).add(f[2])
        elif len(f) == 2 and f[0] == "U":
            undef.setdefault(member, set()).add(f[1])
    return defs, undef


def main():
    defs, undef = members(sys.argv[1])
    calls = {m: {n for n in defs if n != m and undef.get(m, set()) & defs[n]}
             for m in defs}
    # A circle: a member reachable from one of its own callees.
    bad = []
    for m in sorted(calls):
        seen, todo = set(), list(calls[m])
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo.extend(calls.get(n, ()))
        if m in seen:
            bad.append(m)
    for m in sorted(calls):
        print("%s -> %s" % (m, ", ".join(sorted(calls[m])) or "-"))
    if bad:
        for m in bad:
            back = {n: sorted(undef.get(n, set()) & defs[m])
                    for n in calls if m in calls[n]}
            print("FAIL: %s is in a call circle; called back by %s"
                  % (m, back))
        return 1
    print("ok: no call circle among %d files" % len(calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
