#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit einsum against a pure-Python numpy.einsum reference, and its bad-input errors.
Standard library only (.npy files written and read with struct). Usage:
test_cli_einsum.py path/to/attnkit"""
import itertools
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
failures = []
rng = random.Random(4)
tmp = tempfile.mkdtemp(prefix="attnkit_einsum_")

FORMATS = {"<f2": "e", "<f4": "f", "<f8": "d", "<i4": "i"}


def write_npy(path, shape, values, descr="<f4"):
    shape_txt = "(" + "".join(f"{s}," for s in shape) + ")" if len(shape) == 1 else \
        "(" + ", ".join(str(s) for s in shape) + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_txt)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%d%s" % (len(values), FORMATS[descr]), *values))


def read_npy(path):
    data = open(path, "rb").read()
    assert data[:6] == b"\x93NUMPY", "bad magic"
    if data[6] == 1:
        hlen, start = struct.unpack("<H", data[8:10])[0], 10
    else:
        hlen, start = struct.unpack("<I", data[8:12])[0], 12
    header = eval(data[start:start + hlen].decode())  # a Python dict literal
    shape = header["shape"]
    n = 1
    for s in shape:
        n *= s
    fmt = FORMATS[header["descr"]]
    values = struct.unpack("<%d%s" % (n, fmt), data[start + hlen:start + hlen + n * struct.calcsize(fmt)])
    return header["descr"], tuple(shape), list(values)


def ref_einsum(spec, arrays):
    """numpy.einsum by one loop over every index value. arrays: list of (shape, flat values)."""
    spec = spec.replace(" ", "")
    if "->" in spec:
        ins, out = spec.split("->")
        explicit = True
    else:
        ins, out, explicit = spec, "", False
    terms = ins.split(",")
    nb = 0
    for t, (shape, _) in zip(terms, arrays):
        if "..." in t:
            nb = max(nb, len(shape) - (len(t) - 3))
    names = [chr(0x100 + j) for j in range(nb)]

    def expand(t, rank):
        if "..." not in t:
            return list(t)
        own = rank - (len(t) - 3)
        i = t.index("...")
        return list(t[:i]) + names[nb - own:] + list(t[i + 3:])

    terms = [expand(t, len(shape)) for t, (shape, _) in zip(terms, arrays)]
    if explicit:
        out = expand(out, len(out) - 3 + nb if "..." in out else len(out))
    else:
        counts = {}
        for t in terms:
            for c in t:
                if len(c) == 1 and c.isalpha():
                    counts[c] = counts.get(c, 0) + 1
        out = (names if any("..." in t for t in ins.split(",")) else []) + \
            sorted(c for c, n in counts.items() if n == 1)
    extent = {}
    for t, (shape, _) in zip(terms, arrays):
        for c, s in zip(t, shape):
            if extent.get(c, 1) == 1:
                extent[c] = s
            assert s in (1, extent[c])
    labels = sorted(extent)
    out_shape = tuple(extent[c] for c in out)
    size = 1
    for s in out_shape:
        size *= s
    result = [0.0] * size

    def flat(t, shape, value):
        off = 0
        for c, s in zip(t, shape):
            off = off * s + (0 if s == 1 else value[c])
        return off

    for combo in itertools.product(*(range(extent[c]) for c in labels)):
        value = dict(zip(labels, combo))
        p = 1.0
        for t, (shape, vals) in zip(terms, arrays):
            p *= vals[flat(t, shape, value)]
        result[flat(out, out_shape, value)] += p
    return out_shape, result


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def make(name, shape, descr="<f4"):
    n = 1
    for s in shape:
        n *= s
    vals = [round(rng.uniform(-1, 1), 3) for _ in range(n)]
    if descr == "<i4":
        vals = [rng.randint(-5, 5) for _ in range(n)]
    fmt = "<%d%s" % (n, FORMATS[descr])
    vals = list(struct.unpack(fmt, struct.pack(fmt, *vals)))  # the values the file holds
    path = os.path.join(tmp, name)
    write_npy(path, shape, vals, descr)
    return path, (tuple(shape), vals)


def case(spec, shapes, descrs=None, dtype=None, tol=1e-5):
    descrs = descrs or ["<f4"] * len(shapes)
    files, arrays = [], []
    for i, (shape, d) in enumerate(zip(shapes, descrs)):
        p, a = make(f"in{i}.npy", shape, d)
        files.append(p)
        arrays.append(a)
    out = os.path.join(tmp, "out.npy")
    if os.path.exists(out):
        os.remove(out)
    extra = ["--dtype", dtype] if dtype else []
    r = run("einsum", spec, *files, "--out", out, *extra)
    name = f"einsum {spec} {shapes}"
    check(name, r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    if r.returncode != 0:
        return
    descr, shape, got = read_npy(out)
    check(name, descr == ("<f8" if dtype == "f64" else "<f4"), f"dtype {descr}")
    ref_shape, ref = ref_einsum(spec, arrays)
    check(name, shape == ref_shape, f"shape {shape}, expected {ref_shape}")
    for i, (g, e) in enumerate(zip(got, ref)):
        if abs(g - e) > tol * (1 + abs(e)):
            check(name, False, f"element {i}: got {g}, expected {e}")
            break


def bad_input(name, *args, expect, out=None):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(name, r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}")
    check(name, len(lines) == 1 and lines[0].startswith("attnkit:"), f"stderr {r.stderr!r}")
    check(name, expect in r.stderr, f"{expect!r} not in {r.stderr!r}")
    if out:
        check(name, not os.path.exists(out), f"{out} was written")


# The named operations, implicit output, diagonals, broadcasting, several operands.
case("ij,jk->ik", [(3, 4), (4, 5)])
case("ij,jk", [(2, 17), (17, 3)])
case("i,i->", [(7,), (7,)])
case("i,j->ij", [(3,), (4,)])
case("ij,ij->ij", [(3, 5), (3, 5)])
case("ij,ij->", [(3, 5), (3, 5)])
case("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)])
case("ijk,ijl->kl", [(2, 3, 4), (2, 3, 5)])
case("ij->ji", [(3, 4)])
case("ii", [(5, 5)])
case("ii->i", [(5, 5)])
case("ijk->j", [(2, 3, 4)])
case("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)])
case("ij,ij->ij", [(1, 4), (3, 4)])
case("ij,jk,kl->il", [(3, 4), (4, 5), (5, 2)])
case("a,ab,bc,c->", [(3,), (3, 4), (4, 2), (2,)])
case("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)])
# dtypes: float64 in, float32 out; float64 out; float16 in.
case("ij,jk->ik", [(3, 4), (4, 2)], descrs=["<f8", "<f4"])
case("ij,jk->ik", [(3, 4), (4, 2)], descrs=["<f8", "<f8"], dtype="f64", tol=1e-12)
case("ij->j", [(3, 4)], descrs=["<f2"])

# --repeat prints one JSON line; --threads.
a, _ = make("a.npy", (16, 16))
b, _ = make("b.npy", (16, 16))
outp = os.path.join(tmp, "r.npy")
r = run("einsum", "ij,jk->ik", a, b, "--out", outp, "--repeat", "3", "--threads", "1")
check("--repeat", r.returncode == 0, r.stderr)
try:
    j = json.loads(r.stdout.strip().splitlines()[-1])
    check("--repeat keys", {"ms_median", "ms_min", "gflops", "threads"} <= set(j), r.stdout)
    check("--repeat threads", j["threads"] == 1, r.stdout)
except (ValueError, IndexError):
    check("--repeat json", False, r.stdout)
r = run("einsum", "--help")
check("--help", r.returncode == 0 and "usage: attnkit einsum" in r.stdout, r.stdout)
r = run("--help")
check("listed", "einsum" in r.stdout, r.stdout)

# Bad input: exit 2, one "attnkit:" line naming the problem, no output file.
bad = os.path.join(tmp, "bad_out.npy")
c, _ = make("c.npy", (5, 6))
i32, _ = make("i.npy", (4, 4), "<i4")
bad_input("malformed spec", "einsum", "ij,jk-ik", a, b, "--out", bad,
          expect="'-' at position 5", out=bad)
bad_input("bad character", "einsum", "ij,j1->i", a, b, "--out", bad,
          expect="'1' at position 4", out=bad)
bad_input("shape mismatch", "einsum", "ij,jk->ik", a, c, "--out", bad,
          expect="index 'j' has extent 16", out=bad)
bad_input("operand count", "einsum", "ij,jk->ik", a, "--out", bad,
          expect="has 2 operand(s), got 1", out=bad)
bad_input("rank", "einsum", "ijk,jk->ik", a, b, "--out", bad,
          expect="need rank 3", out=bad)
bad_input("missing file", "einsum", "ij->ji", os.path.join(tmp, "nope.npy"), "--out", bad,
          expect="nope.npy", out=bad)
bad_input("integer input", "einsum", "ij->ji", i32, "--out", bad, expect="int32", out=bad)
bad_input("bad dtype", "einsum", "ij->ji", a, "--out", bad, "--dtype", "f16",
          expect="--dtype", out=bad)
bad_input("missing --out", "einsum", "ij->ji", a, expect="--out")
bad_input("missing spec", "einsum", "--out", bad, expect="SPEC")
garbage = os.path.join(tmp, "garbage.npy")
open(garbage, "wb").write(b"not a npy file at all")
bad_input("malformed file", "einsum", "ij->ji", garbage, "--out", bad, expect="garbage.npy",
          out=bad)

for f in failures:
    print("FAIL", f)
print(f"cli einsum: {len(failures)} failures")
sys.exit(1 if failures else 0)
