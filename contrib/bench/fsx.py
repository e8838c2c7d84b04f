#!/usr/bin/python3
"""fsx-style random I/O on one file, checked against an in-memory model.

Usage: fsx.py FILE [--seed N] [--ops N] [--max-len BYTES] [--max-op BYTES] [--log OPLOG]
       fsx.py FILE --replay OPLOG [--only I,J,...]       (run a saved list of operations)
       fsx.py DIR/ --minimize OPLOG                      (shrink a failing list: fresh file per try)

FILE must exist; its content at the start is the model's start (so it can be a photo imported
into consentfs, saved over in place like an editor would). Operations, drawn from the seed and
independent of the file's state (so any subset of them is a valid run and a failure can be
shrunk): write at a random offset and length, truncate up or down, read and compare with the
model (and the size with fstat), fsync, close and reopen (then the whole file is compared).
The file is compared in full at the end. Prints one line of JSON: seconds, ops, final size,
and on a mismatch the operation number, what differed and the seed (exit 1).

Why a model and not checksums: a wrong byte is found at the first read that covers it, with the
operations before it, which is what a bug report needs.
"""
import json
import os
import random
import sys
import time


# Written data comes from one pool of random bytes (a fixed seed, so a saved operation list
# replays the same bytes): a fresh generator per write cost more than the I/O on tmpfs.
POOL = random.Random(0).randbytes(4 << 20)


def gen_ops(seed, n, max_len, max_op):
    """The operation list for `seed`: tuples that do not depend on the file's state."""
    r = random.Random(seed)
    ops = []
    for i in range(n):
        x = r.random()
        if x < 0.40:
            off = r.randrange(max_len)
            ln = r.randint(1, max_op)
            ops.append(["w", off, ln, r.getrandbits(32)])
        elif x < 0.80:
            ops.append(["r", r.randrange(max_len), r.randint(1, max_op)])
        elif x < 0.90:
            # half shrink (to a random size), half grow (up to the maximum)
            ops.append(["t", r.randrange(max_len // 2) if r.random() < 0.5 else r.randrange(max_len)])
        elif x < 0.95:
            ops.append(["f"])
        elif x < 0.99:
            ops.append(["c"])
        else:
            ops.append(["R", r.randrange(max_len), r.randint(1, max_op)])  # read after reopen
    return ops


NAMES = {"w": "write", "r": "read", "t": "truncate", "f": "fsync", "c": "reopen", "R": "reopen+read"}


class Mismatch(Exception):
    def __init__(self, msg, op):
        super().__init__(msg)
        self.op = op  # the index of the failing operation (len(ops): the final check)


def run(path, ops, initial=None):
    """Apply `ops` to `path`; return (seconds, final size). Raises Mismatch with details."""
    if initial is not None:
        with open(path, "wb") as f:
            f.write(initial)
    with open(path, "rb") as f:
        model = bytearray(f.read())
    fd = os.open(path, os.O_RDWR)
    t0 = time.monotonic()
    spent = {}  # seconds per kind of operation, to see where a slow target loses its time

    def check(off, ln, i, what):
        got = os.pread(fd, ln, off)
        want = bytes(model[off:off + ln])
        if got != want:
            first = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                         min(len(got), len(want)))
            raise Mismatch(f"op {i} ({what}): read {ln} bytes at {off}: got {len(got)} bytes, "
                           f"expected {len(want)}; first difference at byte {off + first} "
                           f"(got {got[first:first + 8].hex()}, expected {want[first:first + 8].hex()}); "
                           f"model size {len(model)}", i)
        size = os.fstat(fd).st_size
        if size != len(model):
            raise Mismatch(f"op {i} ({what}): fstat size {size}, model size {len(model)}", i)

    try:
        for i, op in enumerate(ops):
            k = op[0]
            t1 = time.monotonic()
            if k == "w":
                _, off, ln, s = op
                start = s % (len(POOL) - ln)
                data = POOL[start:start + ln]
                if os.pwrite(fd, data, off) != ln:
                    raise Mismatch(f"op {i}: short write", i)
                if off > len(model):
                    model.extend(bytes(off - len(model)))
                model[off:off + ln] = data
            elif k == "r":
                check(op[1], op[2], i, "read")
            elif k == "t":
                os.ftruncate(fd, op[1])
                if op[1] < len(model):
                    del model[op[1]:]
                else:
                    model.extend(bytes(op[1] - len(model)))
            elif k == "f":
                os.fsync(fd)
            elif k in ("c", "R"):
                os.close(fd)
                fd = os.open(path, os.O_RDWR)
                check(0, len(model) + 1, i, "whole file after reopen")
                if k == "R":
                    check(op[1], op[2], i, "read after reopen")
            spent[k] = spent.get(k, 0.0) + time.monotonic() - t1
        check(0, len(model) + 1, len(ops), "whole file at the end")
    finally:
        os.close(fd)
    run.spent = {NAMES[k]: round(v, 3) for k, v in spent.items()}
    return time.monotonic() - t0, len(model)


def ddmin(ops, fails):
    """Zeller's delta debugging: a 1-minimal sublist of `ops` for which `fails` holds."""
    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        parts = [ops[i:i + chunk] for i in range(0, len(ops), chunk)]
        reduced = False
        for j in range(len(parts)):
            rest = [o for p in parts[:j] + parts[j + 1:] for o in p]
            if fails(rest):
                ops, n, reduced = rest, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(ops):
                break
            n = min(len(ops), n * 2)
    return ops


def main(argv):
    args = {"--seed": "1", "--ops": "20000", "--max-len": str(1 << 20), "--max-op": str(64 << 10)}
    pos = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            if i + 1 >= len(argv):
                print(f"{argv[i]} needs a value", file=sys.stderr)
                return 2
            args[argv[i]] = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    if len(pos) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = pos[0]
    seed = int(args["--seed"])
    if "--minimize" in args:
        saved = json.load(open(args["--minimize"]))
        tries = [0]

        def fails(sub):
            tries[0] += 1
            p = os.path.join(path, f"fsx-min-{os.getpid()}-{tries[0]}")
            try:
                run(p, sub, initial=bytes.fromhex(saved.get("initial", "")))
                return False
            except Mismatch:
                return True
            finally:
                try:
                    os.unlink(p)
                except OSError:
                    pass

        if not fails(saved["ops"]):
            print(json.dumps({"minimize": "the saved operations do not fail on a fresh file"}))
            return 1
        small = ddmin(saved["ops"], fails)
        print(json.dumps({"minimal_ops": small, "tries": tries[0]}))
        return 0
    if "--replay" in args:
        ops = json.load(open(args["--replay"]))["ops"]
        if "--only" in args:
            ops = [ops[int(k)] for k in args["--only"].split(",")]
    else:
        ops = gen_ops(seed, int(args["--ops"]), int(args["--max-len"]), int(args["--max-op"]))
    initial = open(path, "rb").read()
    try:
        secs, size = run(path, ops)
    except Mismatch as e:
        if "--log" in args:
            with open(args["--log"], "w") as f:
                json.dump({"seed": seed, "initial": initial.hex(), "ops": ops[:e.op + 1]}, f)
        print(json.dumps({"ok": False, "seed": seed, "mismatch": str(e)}))
        return 1
    print(json.dumps({"ok": True, "seed": seed, "ops": len(ops), "seconds": round(secs, 3),
                      "final_size": size, "seconds_by_op": run.spent}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
