#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit attend against a plain double-precision Python reference that follows the tables of
docs/CLI.md ("attnkit attend") literally: every activation x every mask term, '+' combinations, GQA
and MQA, Nq < Nk, Dv != D, fully masked rows, both gates, --probs, --dtype f32/f64, --repeat,
and the bad-input errors (exit 2, one 'attnkit:' line, no output file). Standard library only
(.npy files written and read with struct); --grad-out against the PyTorch autograd golden files of
tests/golden/data/grads. Usage: test_cli_attend.py path/to/attnkit"""
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
failures = []
rng = random.Random(7)
tmp = tempfile.mkdtemp(prefix="attnkit_attend_")

FORMATS = {"<f2": "e", "<f4": "f", "<f8": "d", "|i1": "b", "|u1": "B", "|b1": "?", "<i2": "h",
           "<i4": "i", "<i8": "q", "<u8": "Q"}
TOL = {"f32": (2e-4, 2e-5), "f64": (1e-10, 1e-12)}  # (relative, absolute)


# ---- .npy files ----------------------------------------------------------------------------

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
    shape = tuple(header["shape"])
    n = math.prod(shape)
    fmt = FORMATS[header["descr"]]
    values = struct.unpack("<%d%s" % (n, fmt),
                           data[start + hlen:start + hlen + n * struct.calcsize(fmt)])
    return header["descr"], shape, list(values)


def save(name, shape, values, descr="<f4"):
    """Writes the array and returns (path, the values the file holds)."""
    fmt = "<%d%s" % (len(values), FORMATS[descr])
    values = list(struct.unpack(fmt, struct.pack(fmt, *values)))
    path = os.path.join(tmp, name)
    write_npy(path, shape, values, descr)
    return path, values


def uniform(n, lo=-1.0, hi=1.0):
    return [round(rng.uniform(lo, hi), 4) for _ in range(n)]


# ---- the reference (docs/CLI.md, literally) -----------------------------------------------------

def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def log_sigmoid(x):
    return min(x, 0.0) - math.log1p(math.exp(-abs(x)))


def term_visible(t, b, h, i, ip, j):
    kind = t[0]
    if kind == "none":
        return True
    if kind == "causal":
        return j <= ip
    if kind == "causal-top-left":
        return j <= i  # the raw row i, whatever Nk - Nq
    if kind == "sliding":
        return j <= ip and ip - j < t[1]
    if kind == "local":
        return abs(ip - j) <= t[1]
    if kind == "sinks":
        return j <= ip and (j < t[1] or ip - j < t[2])
    if kind == "prefix-lm":
        return j < t[1] or j <= ip
    if kind == "padding":
        return j < t[1][b]
    if kind == "keep":
        return t[1][b][j] != 0
    if kind == "document":
        return t[1][b][ip] == t[1][b][j]
    if kind == "block-sparse":
        layout, bq, bk = t[1], t[2], t[3]
        return layout[b][h][i // bq][j // bk] != 0
    raise ValueError(kind)


def alibi_slopes(n):
    """The ALiBi paper's get_slopes(n), as its reference code writes it."""
    def power_of_2(m):
        start = 2 ** (-2 ** -(math.log2(m) - 3))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][:n - closest]


def reference(p, act, terms, scale=None, bias=None, gate=None, gvals=None, alibi=False,
              kb=None, sinks=None):
    """p: problem dict with flat q, k, v. Returns (O flat [B,Hq,Nq,Dv], P flat [B,Hq,Nq,Nk]).
    alibi: s -= m_h |i' - j|; kb: (shape, flat values) of --key-bias, added to s; a score of
    -inf gets weight 0 (the pair is not visible). sinks: the --sink-logits z_h, a term
    exp(z_h) in the denominator of the softmax family."""
    B, Hq, Hkv, Nq, Nk, D, Dv = (p[x] for x in ("B", "Hq", "Hkv", "Nq", "Nk", "D", "Dv"))
    q, k, v = p["q"], p["k"], p["v"]
    grp = Hq // Hkv
    sc = scale if scale is not None else 1.0 / math.sqrt(D)
    slopes = alibi_slopes(Hq) if alibi else None
    s = {}
    vis = {}
    for b in range(B):
        for h in range(Hq):
            kh = h // grp
            for i in range(Nq):
                ip = i + (Nk - Nq)
                qo = ((b * Hq + h) * Nq + i) * D
                for j in range(Nk):
                    ko = ((b * Hkv + kh) * Nk + j) * D
                    x = sc * sum(q[qo + c] * k[ko + c] for c in range(D))
                    if alibi:
                        x -= slopes[h] * abs(ip - j)
                    if kb is not None:
                        kshape, kv = kb
                        x += kv[b * Nk + j] if len(kshape) == 2 else \
                            kv[((b * Hq + h) * Nq + i) * Nk + j]
                    s[b, h, i, j] = x
                    vis[b, h, i, j] = all(term_visible(t, b, h, i, ip, j) for t in terms) and \
                        x != -math.inf
    P = [0.0] * (B * Hq * Nq * Nk)
    name = act.split("=")[0]
    cap = float(act.split("=")[1]) if name == "softcap" else None
    bb = bias if bias is not None else (-math.log(Nk) if Nk > 0 else 0.0)
    for b in range(B):
        for i in range(Nq):
            if name == "head-softmax":
                for j in range(Nk):
                    hs = [h for h in range(Hq) if vis[b, h, i, j]]
                    if not hs:
                        continue
                    m = max(s[b, h, i, j] for h in hs)
                    tot = sum(math.exp(s[b, h, i, j] - m) for h in hs)
                    for h in hs:
                        P[((b * Hq + h) * Nq + i) * Nk + j] = math.exp(s[b, h, i, j] - m) / tot
                continue
            for h in range(Hq):
                js = [j for j in range(Nk) if vis[b, h, i, j]]
                row = ((b * Hq + h) * Nq + i) * Nk
                if name in ("softmax", "softcap", "normalized-sigmoid"):
                    if name == "normalized-sigmoid":
                        nb = bias if bias is not None else 0.0  # b = 0 unless --bias
                        # sigmoid / sum as the softmax of log sigmoid: no 0 / 0 on underflow
                        ls = {j: log_sigmoid(s[b, h, i, j] + nb) for j in js}
                    else:
                        f = (lambda x: cap * math.tanh(x / cap)) if cap else (lambda x: x)
                        ls = {j: f(s[b, h, i, j]) for j in js}
                    z = [sinks[h]] if sinks else []  # a sink: exp(z_h) joins the sum
                    if js:
                        m = max(list(ls.values()) + z)
                        tot = sum(math.exp(ls[j] - m) for j in js) + \
                            sum(math.exp(x - m) for x in z)
                        for j in js:
                            P[row + j] = math.exp(ls[j] - m) / tot
                else:
                    for j in js:
                        x = s[b, h, i, j]
                        P[row + j] = {"sigmoid": lambda: sigmoid(x),
                                      "sigmoid-bias": lambda: sigmoid(x + bb),
                                      "linear": lambda: x,
                                      "relu": lambda: max(x, 0.0)}[name]()
    O = [0.0] * (B * Hq * Nq * Dv)
    for b in range(B):
        for h in range(Hq):
            kh = h // grp
            for i in range(Nq):
                prow = ((b * Hq + h) * Nq + i) * Nk
                orow = ((b * Hq + h) * Nq + i) * Dv
                for c in range(Dv):
                    acc = sum(P[prow + j] * v[((b * Hkv + kh) * Nk + j) * Dv + c]
                              for j in range(Nk))
                    if gate == "headwise":
                        acc *= sigmoid(gvals[(b * Hq + h) * Nq + i])
                    elif gate == "elementwise":
                        acc *= sigmoid(gvals[orow + c])
                    O[orow + c] = acc
    return O, P


# ---- running and checking ------------------------------------------------------------------

def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")
    return cond


def problem(B=2, Hq=4, Hkv=2, Nq=5, Nk=9, D=3, Dv=2, descr="<f4", tag="p"):
    p = dict(B=B, Hq=Hq, Hkv=Hkv, Nq=Nq, Nk=Nk, D=D, Dv=Dv, descr=descr)
    p["qf"], p["q"] = save(f"{tag}_q.npy", (B, Hq, Nq, D), uniform(B * Hq * Nq * D, -1.5, 1.5), descr)
    p["kf"], p["k"] = save(f"{tag}_k.npy", (B, Hkv, Nk, D), uniform(B * Hkv * Nk * D, -1.5, 1.5), descr)
    p["vf"], p["v"] = save(f"{tag}_v.npy", (B, Hkv, Nk, Dv), uniform(B * Hkv * Nk * Dv), descr)
    return p


def mask_files(p, tag="m"):
    """Mask arrays for problem p: {term name: (spec text, reference term)}."""
    B, Hq, Nq, Nk = p["B"], p["Hq"], p["Nq"], p["Nk"]
    out = {}
    lens = [rng.randint(1, Nk) for _ in range(B)]
    f, lens = save(f"{tag}_len.npy", (B,), lens, "<i4")
    out["padding"] = (f"padding={f}", ("padding", lens))
    keep = [[1 if rng.random() < 0.6 else 0 for _ in range(Nk)] for _ in range(B)]
    f, _ = save(f"{tag}_keep.npy", (B, Nk), [x != 0 for r in keep for x in r], "|b1")
    out["keep"] = (f"keep={f}", ("keep", keep))
    seg = [sorted(rng.randint(0, 2) for _ in range(Nk)) for _ in range(B)]
    f, _ = save(f"{tag}_seg.npy", (B, Nk), [x for r in seg for x in r], "<i8")
    out["document"] = (f"document={f}", ("document", seg))
    bq, bk = 2, 3
    nbq, nbk = -(-Nq // bq), -(-Nk // bk)
    lay = [[[[1 if rng.random() < 0.5 else 0 for _ in range(nbk)] for _ in range(nbq)]
            for _ in range(Hq)] for _ in range(B)]
    f, _ = save(f"{tag}_lay.npy", (B, Hq, nbq, nbk),
                [x for a in lay for b_ in a for c in b_ for x in c], "|u1")
    out["block-sparse"] = (f"block-sparse={f},{bq},{bk}", ("block-sparse", lay, bq, bk))
    return out


def compare(name, got, want, dtype):
    rel, ab = TOL[dtype]
    for n, (g, e) in enumerate(zip(got, want)):
        if not (abs(g - e) <= rel * (1 + abs(e)) + ab):  # also catches NaN
            return check(name, False, f"element {n}: got {g}, expected {e}")
    return check(name, len(got) == len(want), f"{len(got)} elements, expected {len(want)}")


def case(name, p, act="softmax", spec="none", terms=(), dtype="f32", scale=None, bias=None,
         gate=None, probs=True, extra=(), alibi=False, kb=None, sinks=None):
    out = os.path.join(tmp, "out.npy")
    pp = os.path.join(tmp, "probs.npy")
    for f in (out, pp):
        if os.path.exists(f):
            os.remove(f)
    args = ["attend", "--q", p["qf"], "--k", p["kf"], "--v", p["vf"], "--out", out,
            "--activation", act, "--mask", spec, "--dtype", dtype]
    if scale is not None:
        args += ["--scale", repr(scale)]
    if bias is not None:
        args += ["--bias", repr(bias)]
    if alibi:
        args += ["--alibi"]
    if kb is not None:
        args += ["--key-bias", kb[2]]
        kb = kb[:2]
    if sinks is not None:
        args += ["--sink-logits", sinks[0]]
        sinks = sinks[1]
    gvals = None
    if gate:
        shape = (p["B"], p["Hq"], p["Nq"]) + ((p["Dv"],) if gate == "elementwise" else ())
        gf, gvals = save("gate.npy", shape, uniform(math.prod(shape), -2, 2), p["descr"])
        args += ["--gate", gate, "--gate-values", gf]
    if probs:
        args += ["--probs", pp]
    r = run(*args, *extra)
    name = f"{name} [{act} | {spec} | {dtype}{' | ' + gate if gate else ''}]"
    if not check(name, r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"):
        return None
    want_o, want_p = reference(p, act, terms, scale, bias, gate, gvals, alibi, kb, sinks)
    descr, shape, got = read_npy(out)
    check(name, descr == ("<f8" if dtype == "f64" else "<f4"), f"dtype {descr}")
    check(name, shape == (p["B"], p["Hq"], p["Nq"], p["Dv"]), f"shape {shape}")
    compare(name + " O", got, want_o, dtype)
    if probs:
        descr, shape, gotp = read_npy(pp)
        check(name, shape == (p["B"], p["Hq"], p["Nq"], p["Nk"]), f"probs shape {shape}")
        compare(name + " P", gotp, want_p, dtype)
    return got, r


ACTIVATIONS = ["softmax", "sigmoid", "sigmoid-bias", "normalized-sigmoid", "head-softmax",
               "linear", "relu", "softcap=1.5"]

# Every activation x every mask term: B=2, GQA Hq=4/Hkv=2, Nq=5 < Nk=9, Dv=2 != D=3.
base = problem(tag="base")
files = mask_files(base, "base")
TERMS = [("none", [("none",)]), ("causal", [("causal",)]),
         ("causal=bottom-right", [("causal",)]), ("causal=top-left", [("causal-top-left",)]),
         ("sliding=3", [("sliding", 3)]),
         ("local=1", [("local", 1)]), ("sinks=2,2", [("sinks", 2, 2)]),
         ("prefix-lm=6", [("prefix-lm", 6)])] + \
        [(files[n][0], [files[n][1]]) for n in ("padding", "keep", "document", "block-sparse")]
for act in ACTIVATIONS:
    for spec, terms in TERMS:
        case("activation x mask", base, act, spec, terms)

# Several terms joined by '+' (all required).
COMBOS = [("causal+" + files["padding"][0], [("causal",), files["padding"][1]]),
          ("sliding=4+" + files["keep"][0], [("sliding", 4), files["keep"][1]]),
          (files["document"][0] + "+causal", [files["document"][1], ("causal",)]),
          ("sinks=1,2+" + files["block-sparse"][0], [("sinks", 1, 2), files["block-sparse"][1]]),
          ("prefix-lm=2+local=3+none", [("prefix-lm", 2), ("local", 3)]),
          ("causal+causal+sliding=2", [("causal",), ("sliding", 2)])]
for spec, terms in COMBOS:
    for act in ("softmax", "sigmoid-bias", "head-softmax"):
        case("combination", base, act, spec, terms)

# MQA, MHA, Nq == Nk, a single query (decode shape), D = 1.
mqa = problem(B=1, Hq=3, Hkv=1, Nq=4, Nk=7, D=5, Dv=3, tag="mqa")
for act in ("softmax", "normalized-sigmoid", "head-softmax", "relu"):
    case("MQA", mqa, act, "causal", [("causal",)])
mha = problem(B=1, Hq=2, Hkv=2, Nq=6, Nk=6, D=2, Dv=4, tag="mha")
case("MHA", mha, "softmax", "causal", [("causal",)])
case("MHA", mha, "softcap=0.7", "sliding=2", [("sliding", 2)])
one = problem(B=2, Hq=4, Hkv=2, Nq=1, Nk=11, D=1, Dv=2, tag="one")
case("single query", one, "softmax", "sinks=1,3", [("sinks", 1, 3)])
case("single query", one, "sigmoid", "none", [("none",)])

# Several key and query tiles (tiles of 64: Empty tiles skipped, Full ones untested).
big = problem(B=1, Hq=2, Hkv=1, Nq=70, Nk=150, D=4, Dv=4, tag="big")
case("multi-tile", big, "softmax", "causal+sliding=20", [("causal",), ("sliding", 20)],
     probs=False)
case("multi-tile", big, "linear", "sinks=3,40", [("sinks", 3, 40)], probs=False)

# The decode path (few query rows, Nk >= 2048: keys split into chunks, merged afterwards).
dec = problem(B=2, Hq=4, Hkv=2, Nq=3, Nk=2100, D=4, Dv=3, tag="dec")
fdl, dl = save("dec_len.npy", (2,), [1500, 2100], "<i4")
case("decode path", dec, "softmax", f"sinks=4,600+padding={fdl}",
     [("sinks", 4, 600), ("padding", dl)], probs=False)
case("decode path", dec, "normalized-sigmoid", "sliding=700", [("sliding", 700)], probs=False,
     gate="headwise")

# Fully masked rows: padding length 0 for batch entry 0, keep all-zero for entry 1: zero rows
# (no NaN) under the normalizing activations too.
f0, lens0 = save("len0.npy", (2,), [0, 9], "|i1")
kz = [[1] * 9, [0] * 9]
fz, _ = save("keep0.npy", (2, 9), [x for r in kz for x in r], "|u1")
for act in ("softmax", "normalized-sigmoid", "head-softmax", "softcap=2", "sigmoid"):
    res = case("fully masked", base, act, f"padding={f0}+keep={fz}",
               [("padding", lens0), ("keep", kz)])
    if res:
        check(f"fully masked zeros [{act}]", all(x == 0.0 for x in res[0]), res[0][:8])

# Gates, --scale, --bias.
case("gate", base, "softmax", "causal", [("causal",)], gate="headwise")
case("gate", base, "sigmoid-bias", files["keep"][0], [files["keep"][1]], gate="elementwise")
case("gate", base, "head-softmax", "none", [("none",)], gate="elementwise", dtype="f64")
case("scale", base, "softmax", "none", [("none",)], scale=0.25)
case("scale", base, "linear", "causal", [("causal",)], scale=-1.25)
case("bias", base, "sigmoid-bias", "none", [("none",)], bias=0.75)
case("bias", base, "sigmoid-bias", "causal", [("causal",)], bias=-3.0, dtype="f64")
case("bias", base, "normalized-sigmoid", "causal", [("causal",)], bias=-2.5)
case("bias", base, "normalized-sigmoid", "sliding=3", [("sliding", 3)], bias=1.5, dtype="f64")
# Every sigmoid underflows (e^-1e4 = 0 in f64, e^-200 = 0 in f32): the limit, softmax of s.
case("bias underflow", base, "normalized-sigmoid", "causal", [("causal",)], bias=-1e4, dtype="f64")
case("bias underflow", base, "normalized-sigmoid", "sliding=3", [("sliding", 3)], bias=-200.0)

# Score mods: --alibi (the paper's slopes, also for a head count that is not a power of two)
# and --key-bias [B, Nk] or [B, Hq, Nq, Nk] holding -inf: those pairs get weight 0, a row whose
# visible scores are all -inf outputs zeros (batch entry 1 of kb2 hides every key).
def key_bias(p, full, tag, descr="<f4"):
    B, Hq, Nq, Nk = p["B"], p["Hq"], p["Nq"], p["Nk"]
    shape = (B, Hq, Nq, Nk) if full else (B, Nk)
    vals = [round(rng.uniform(-2, 2), 3) for _ in range(math.prod(shape))]
    for n in range(len(vals)):
        j, b = n % Nk, n // math.prod(shape[1:])
        if j % 4 == 1 or (not full and b == 1) or (full and rng.random() < 0.2):
            vals[n] = -math.inf
    f, vals = save(f"{tag}_kb.npy", shape, vals, descr)
    return shape, vals, f


kb2 = key_bias(base, False, "kb2")
kb4 = key_bias(base, True, "kb4")
for act in ACTIVATIONS:
    case("key bias [B, Nk]", base, act, "causal", [("causal",)], kb=kb2)
    case("key bias [B, Hq, Nq, Nk]", base, act, "none", [("none",)], kb=kb4)
    case("alibi", base, act, "causal", [("causal",)], alibi=True)
res = case("key bias -inf rows", base, "softmax", "none", [("none",)], kb=kb2)
if res:
    B, Hq, Nq, Dv = base["B"], base["Hq"], base["Nq"], base["Dv"]
    tail = res[0][Hq * Nq * Dv:]  # batch entry 1: every key hidden
    check("key bias: a row of -inf is a zero row", all(x == 0.0 for x in tail), tail[:8])
# --kv-dtype bf16 / f16: K and V rounded to that type before the call (the reference gets the
# rounded values: round to nearest even, as the library does).
def round_bf16(x):
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", b))[0]


def round_f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


for kvd, rnd in [("bf16", round_bf16), ("f16", round_f16)]:
    rp = dict(base)
    rp["k"] = [rnd(x) for x in base["k"]]
    rp["v"] = [rnd(x) for x in base["v"]]
    check(f"kv-dtype {kvd} rounds", rp["k"] != base["k"], "the rounding changed nothing")
    for act in ("softmax", "sigmoid", "head-softmax"):
        case(f"kv-dtype {kvd}", rp, act, "causal", [("causal",)], extra=("--kv-dtype", kvd))
    case(f"kv-dtype {kvd}, alibi", rp, "normalized-sigmoid", "sliding=3", [("sliding", 3)],
         alibi=True, extra=("--kv-dtype", kvd))

# --sink-logits [Hq]: a learned logit per query head joins the softmax-family denominator.
sink_file = save("sinks.npy", (base["Hq"],), [1.5, -0.5, 4.0, -30.0])
sink_f16 = save("sinks16.npy", (base["Hq"],), [0.5, 2.0, -1.0, 0.0], "<f2")
for act in ("softmax", "normalized-sigmoid", "softcap=2.5"):
    case("sink logits", base, act, "causal", [("causal",)], sinks=sink_file)
    case("sink logits, f16 file", base, act, "sliding=3", [("sliding", 3)], sinks=sink_f16,
         dtype="f64", alibi=True)
h6 = problem(B=1, Hq=6, Hkv=3, Nq=4, Nk=7, D=3, Dv=2, tag="h6")
case("alibi, 6 heads", h6, "softmax", "causal", [("causal",)], alibi=True)
case("alibi, 6 heads", h6, "sigmoid", "none", [("none",)], alibi=True, dtype="f64")
case("alibi + key bias + mask", base, "normalized-sigmoid", "sliding=4", [("sliding", 4)],
     alibi=True, kb=kb4, dtype="f64")
case("alibi + key bias, f64 file", base, "softcap=1.5", "causal=top-left",
     [("causal-top-left",)], alibi=True, kb=key_bias(base, False, "kb64", "<f8"), dtype="f64")

# float64 inputs and --dtype f64 (tight), float64 inputs computed in f32, float16 inputs.
b64 = problem(descr="<f8", tag="b64")
f64files = mask_files(b64, "b64")
for act in ACTIVATIONS:
    case("f64", b64, act, "causal+" + f64files["padding"][0],
         [("causal",), f64files["padding"][1]], dtype="f64")
case("f64 in, f32 out", b64, "softmax", "local=2", [("local", 2)])
h16 = problem(B=1, Hq=2, Hkv=1, Nq=3, Nk=4, D=2, Dv=2, descr="<f2", tag="h16")
case("f16 in", h16, "softmax", "causal", [("causal",)], dtype="f64")

# Other integer dtypes for padding/document, bool block layout.
fi, li = save("len_u8.npy", (2,), [3, 20], "|u1")
case("padding uint8 (len > Nk)", base, "softmax", f"padding={fi}", [("padding", li)])
segs = [[5, 5, 7, 7, 7, 5, 5, 9, 9], [0] * 9]
fs, _ = save("seg_i2.npy", (2, 9), [x for r in segs for x in r], "<i2")
case("document int16 unsorted", base, "relu", f"document={fs}", [("document", segs)])

# Thread count does not change the result (bit for bit).
r1 = case("threads 1", big, "softmax", "causal", [("causal",)], probs=False,
          extra=("--threads", "1"))
r2 = case("threads 2", big, "softmax", "causal", [("causal",)], probs=False,
          extra=("--threads", "2"))
if r1 and r2:
    check("thread count", r1[0] == r2[0], "outputs differ between --threads 1 and 2")

# --repeat prints one JSON line and still writes the right output.
res = case("--repeat", big, "softmax", "causal", [("causal",)], probs=False,
           extra=("--repeat", "3", "--threads", "1"))
if res:
    out = res[1].stdout.strip().splitlines()
    try:
        j = json.loads(out[-1])
        check("--repeat keys", set(j) == {"ms_median", "ms_min", "gflops", "threads"}, out)
        check("--repeat threads", j["threads"] == 1, out)
        check("--repeat values", j["ms_min"] <= j["ms_median"] and j["gflops"] > 0, out)
        check("--repeat one line", len(out) == 1, out)
    except (ValueError, IndexError, KeyError):
        check("--repeat json", False, res[1].stdout)

r = run("attend", "--help")
check("--help", r.returncode == 0 and "usage: attnkit attend" in r.stdout, r.stdout)
r = run("--help")
check("listed", "attend" in r.stdout, r.stdout)


# ---- bad input: exit 2, one "attnkit:" line naming the problem, no output file -------------

def bad_input(name, *args, expect, out=None):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(name, r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}")
    check(name, len(lines) == 1 and lines[0].startswith("attnkit:"), f"stderr {r.stderr!r}")
    check(name, expect in r.stderr, f"{expect!r} not in {r.stderr!r}")
    for f in out or []:
        check(name, not os.path.exists(f), f"{f} was written")
    left = [f for f in os.listdir(tmp) if "attnkit-tmp" in f]
    check(name, not left, f"temporary files left: {left}")


bad = os.path.join(tmp, "bad_out.npy")
badp = os.path.join(tmp, "bad_probs.npy")
QKV = ["--q", base["qf"], "--k", base["kf"], "--v", base["vf"]]


def attend_bad(name, *extra, expect, qkv=None):
    args = ["attend", *(qkv or QKV), "--out", bad, "--probs", badp, *extra]
    bad_input(name, *args, expect=expect, out=[bad, badp])


def with_file(key, path):
    q = list(QKV)
    q[q.index(key) + 1] = path
    return q


nope = os.path.join(tmp, "nope.npy")
garbage = os.path.join(tmp, "garbage.npy")
open(garbage, "wb").write(b"\x93NUMPY garbage, not a header")
fint, _ = save("q_int.npy", (2, 4, 5, 3), [1] * 120, "<i4")
f3d, _ = save("q_3d.npy", (4, 5, 3), uniform(60))
fq3, _ = save("q_h3.npy", (2, 3, 5, 3), uniform(90))
fqd, _ = save("q_d4.npy", (2, 4, 5, 4), uniform(160))
fqb, _ = save("q_b1.npy", (1, 4, 5, 3), uniform(60))
fv8, _ = save("v_nk8.npy", (2, 2, 8, 2), uniform(64))
nanq = uniform(120)
nanq[17] = float("nan")
fnan, _ = save("q_nan.npy", (2, 4, 5, 3), nanq)
fbig, _ = save("q_big.npy", (2, 4, 5, 3), [1e300] + uniform(119), "<f8")
fkf, _ = save("keep_f.npy", (2, 9), uniform(18), "<f4")
fkw, _ = save("keep_w.npy", (2, 10), [1] * 20, "|u1")
fpf, _ = save("len_f.npy", (2,), [3.0, 4.0], "<f4")
fpb, _ = save("len_b.npy", (2,), [True, False], "|b1")
fp3, _ = save("len_3.npy", (3,), [1, 2, 3], "<i4")
fp2d, _ = save("len_2d.npy", (2, 1), [1, 2], "<i4")
fds, _ = save("seg_w.npy", (1, 9), [0] * 9, "<i4")
fdu, _ = save("seg_u64.npy", (2, 9), [2**63 + 5] * 18, "<u8")
flw, _ = save("lay_w.npy", (2, 4, 3, 3), [1] * 72, "|u1")
fgh, _ = save("g_h.npy", (2, 4, 4), uniform(32))
fge, _ = save("g_e.npy", (2, 4, 5, 3), uniform(120))

attend_bad("missing file", expect="nope.npy", qkv=with_file("--q", nope))
attend_bad("malformed file", expect="garbage.npy", qkv=with_file("--k", garbage))
attend_bad("integer input", expect="int32", qkv=with_file("--q", fint))
attend_bad("rank", expect="rank-4", qkv=with_file("--q", f3d))
attend_bad("Hq not a multiple of Hkv", expect="Hq must be a multiple of Hkv",
           qkv=with_file("--q", fq3))
attend_bad("D mismatch", expect="D = 4", qkv=with_file("--q", fqd))
attend_bad("batch mismatch", expect="B = 1", qkv=with_file("--q", fqb))
attend_bad("V's Nk mismatch", expect="v_nk8.npy [2, 2, 8, 2]", qkv=with_file("--v", fv8))
attend_bad("NaN input", expect="not finite", qkv=with_file("--q", fnan))
attend_bad("f64 overflowing f32", expect="not finite", qkv=with_file("--q", fbig))
attend_bad("gate values shape (headwise)", "--gate", "headwise", "--gate-values", fgh,
           expect="g_h.npy [2, 4, 4] must be [B, Hq, Nq] = [2, 4, 5]")
attend_bad("gate values shape (elementwise)", "--gate", "elementwise", "--gate-values", fge,
           expect="[B, Hq, Nq, Dv] = [2, 4, 5, 2]")
attend_bad("gate values rank", "--gate", "headwise", "--gate-values", fge, expect="rank-3")
attend_bad("gate without values", "--gate", "headwise", expect="--gate-values")
attend_bad("values without gate", "--gate-values", fgh, expect="--gate")
attend_bad("unknown gate", "--gate", "channel", "--gate-values", fgh, expect="'channel'")
attend_bad("unknown activation", "--activation", "tanh", expect="unknown activation 'tanh'")
attend_bad("softcap without C", "--activation", "softcap", expect="softcap=")
attend_bad("softcap C <= 0", "--activation", "softcap=0", expect="C > 0")
attend_bad("softcap C not a number", "--activation", "softcap=big", expect="'big'")
attend_bad("--bias without sigmoid-bias", "--activation", "sigmoid", "--bias", "1",
           expect="--bias")
attend_bad("--bias with softmax", "--bias", "1", expect="normalized-sigmoid")
fkb_shape, _ = save("kb_shape.npy", (2, 8), [0.0] * 16)
attend_bad("key bias shape", "--key-bias", fkb_shape, expect="[B, Nk] = [2, 9]")
fkb_nan, _ = save("kb_nan.npy", (2, 9), [0.0] * 5 + [math.nan] + [0.0] * 12)
attend_bad("key bias NaN", "--key-bias", fkb_nan, expect="element 5 is NaN")
fkb_inf, _ = save("kb_inf.npy", (2, 9), [0.0] * 3 + [math.inf] + [0.0] * 14)
attend_bad("key bias +inf", "--key-bias", fkb_inf, expect="element 3 is +inf")
fkb_int, _ = save("kb_int.npy", (2, 9), [0] * 18, "<i4")
attend_bad("key bias integer", "--key-bias", fkb_int, expect="int32")
fsk3, _ = save("sinks3.npy", (3,), [0.0, 1.0, 2.0])
attend_bad("sink logits shape", "--sink-logits", fsk3, expect="[Hq] = [4]")
fsk_nan, _ = save("sinks_nan.npy", (4,), [0.0, math.nan, 2.0, 1.0])
attend_bad("sink logits NaN", "--sink-logits", fsk_nan, expect="element 1 is not finite")
attend_bad("sink logits with sigmoid", "--activation", "sigmoid", "--sink-logits",
           sink_file[0], expect="softmax-family")
attend_bad("kv dtype", "--kv-dtype", "fp8", expect="--kv-dtype")
attend_bad("kv dtype with f64", "--kv-dtype", "bf16", "--dtype", "f64", expect="--dtype f32")
fk_big, _ = save("k_big.npy", (2, 2, 9, 3), [70000.0] + [0.5] * 107)
attend_bad("kv dtype f16 overflow", "--kv-dtype", "f16", expect="out of the range of f16",
           qkv=with_file("--k", fk_big))
attend_bad("--bias not a number", "--activation", "sigmoid-bias", "--bias", "x", expect="--bias")
attend_bad("unknown mask term", "--mask", "causal+diagonal", expect="unknown term 'diagonal'")
attend_bad("empty mask term", "--mask", "causal++local=1", expect="empty term")
attend_bad("sliding W <= 0", "--mask", "sliding=0", expect="W of sliding=W must be >= 1")
attend_bad("sliding without W", "--mask", "sliding", expect="sliding=W")
attend_bad("sliding W not a number", "--mask", "causal+sliding=ten",
           expect="term 'sliding=ten'")
attend_bad("local W < 0", "--mask", "local=-2", expect=">= 0")
attend_bad("sinks needs S,W", "--mask", "sinks=4", expect="sinks=S,W")
attend_bad("sinks W <= 0", "--mask", "sinks=4,0", expect="W of sinks=S,W must be >= 1")
attend_bad("causal with a bad alignment", "--mask", "causal=1", expect="bottom-right (the default) or top-left")
attend_bad("none takes no value", "--mask", "none=1", expect="takes no value")
attend_bad("prefix-lm P < 0", "--mask", "prefix-lm=-1", expect="P of prefix-lm=P")
attend_bad("block-sparse syntax", "--mask", f"block-sparse={flw}", expect="BQ")
attend_bad("block-sparse BQ <= 0", "--mask", f"block-sparse={flw},0,3", expect="BQ")
attend_bad("mask file missing", "--mask", f"causal+keep={nope}", expect="nope.npy")
attend_bad("keep float", "--mask", f"keep={fkf}", expect="bool or uint8")
attend_bad("keep shape", "--mask", f"keep={fkw}", expect="expected [B, Nk] = [2, 9]")
attend_bad("padding float", "--mask", f"padding={fpf}", expect="integer")
attend_bad("padding bool", "--mask", f"padding={fpb}", expect="integer")
attend_bad("padding shape", "--mask", f"padding={fp3}", expect="expected [B] = [2]")
attend_bad("padding rank", "--mask", f"padding={fp2d}", expect="rank-1")
attend_bad("document shape", "--mask", f"document={fds}", expect="[B, Nk] = [2, 9]")
attend_bad("document value range", "--mask", f"document={fdu}", expect="seg_u64.npy")
attend_bad("block-sparse shape (BQ)", "--mask", f"block-sparse={flw},3,3",
           expect="has shape [2, 4, 3, 3], expected [B, Hq, ceil(Nq/BQ), ceil(Nk/BK)] = [2, 4, 2, 3]")
attend_bad("block-sparse shape (BK)", "--mask", f"block-sparse={flw},2,2", expect="[2, 4, 3, 5]")
attend_bad("bad dtype", "--dtype", "f16", expect="--dtype")
attend_bad("bad repeat", "--repeat", "0", expect="--repeat")
attend_bad("bad threads", "--threads", "-1", expect="--threads")
attend_bad("bad scale", "--scale", "inf", expect="--scale")
attend_bad("unknown option", "--heads", "2", expect="--heads")
attend_bad("positional", "extra.npy", expect="extra.npy")
attend_bad("probs same as out", "--probs", bad, expect="same file")
bad_input("missing --out", "attend", *QKV, expect="--out")
bad_input("missing --v", "attend", "--q", base["qf"], "--k", base["kf"], "--out", bad,
          expect="--v", out=[bad])
# An unwritable --probs leaves --out unwritten too (outputs are renamed only once all are written).
bad_input("unwritable --probs", "attend", *QKV, "--out", bad, "--probs",
          os.path.join(tmp, "no_such_dir", "p.npy"), expect="no_such_dir", out=[bad])
bad_input("unwritable --out", "attend", *QKV, "--out", os.path.join(tmp, "no_such_dir", "o.npy"),
          expect="no_such_dir")

# ---- --grad-out: the gradients against PyTorch autograd (tests/golden/data/grads) ----------

GRADS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "data", "grads")


def golden(name):
    return os.path.join(GRADS, name + ".npy")


def grad_case(name, act, mask, extra=(), outs=("dq", "dk", "dv"), dtype="f64"):
    files = {o: os.path.join(tmp, f"g_{name}_{o}.npy") for o in outs}
    args = ["attend", "--q", golden("q"), "--k", golden("k"), "--v", golden("v"),
            "--out", os.path.join(tmp, f"g_{name}_o.npy"), "--activation", act, "--mask", mask,
            "--dtype", dtype, "--grad-out", golden("dout"), *extra]
    for o, f in files.items():
        args += ["--" + o, f]
    r = run(*args)
    if not check("grad " + name, r.returncode == 0, r.stderr):
        return
    rel = 1e-9 if dtype == "f64" else 5e-4
    for o, f in files.items():
        _, shape, got = read_npy(f)
        _, wshape, want = read_npy(golden(f"{o}_{name}"))
        check(f"grad {name} {o} shape", shape == wshape, f"{shape} != {wshape}")
        big = max(abs(w) for w in want) or 1.0
        err = max(abs(g - w) for g, w in zip(got, want))
        check(f"grad {name} {o} {dtype}", err <= rel * big, f"largest error {err} of {big}")


segfile, _ = save("g_seg.npy", (2, 70), [int(x) for x in read_npy(golden("segments"))[2]], "<i8")
for act, mask, spec in [("softmax", "causal", "causal"), ("sigmoid-bias", "sliding", "sliding=17"),
                        ("head-softmax", "none", "none"), ("normalized-sigmoid", "padding",
                                                           "padding=" + golden("lengths")),
                        ("relu", "document", "document=" + segfile)]:
    grad_case(f"{act}_{mask}", act, spec)
grad_case("softmax_causal", "softmax", "causal", dtype="f32")
grad_case("softmax_causal_headwise", "softmax", "causal",
          ["--gate", "headwise", "--gate-values", golden("gate_heads")], ("dq", "dk", "dv", "dgate"))
grad_case("softmax_causal_elementwise", "softmax", "causal",
          ["--gate", "elementwise", "--gate-values", golden("gate")], ("dv", "dgate"))
grad_case("softmax_causal_sinks", "softmax", "causal", ["--sink-logits", golden("sinks")],
          ("dq", "dsinks"))
GQKV = ["--q", golden("q"), "--k", golden("k"), "--v", golden("v")]
gout = os.path.join(tmp, "g_bad_o.npy")
gdq = os.path.join(tmp, "g_bad_dq.npy")
bad_input("--dq without --grad-out", "attend", *GQKV, "--out", gout, "--dq", gdq,
          expect="--grad-out", out=[gout, gdq])
bad_input("--grad-out without outputs", "attend", *GQKV, "--out", gout, "--grad-out",
          golden("dout"), expect="at least one", out=[gout])
bad_input("--grad-out shape", "attend", *GQKV, "--out", gout, "--grad-out", golden("k"),
          "--dq", gdq, expect="--grad-out", out=[gout, gdq])
bad_input("--grad-out with --alibi", "attend", *GQKV, "--out", gout, "--grad-out",
          golden("dout"), "--dq", gdq, "--alibi", expect="--alibi", out=[gout, gdq])
bad_input("--dgate without --gate", "attend", *GQKV, "--out", gout, "--grad-out",
          golden("dout"), "--dgate", gdq, expect="--gate", out=[gout, gdq])
bad_input("--dq same as --out", "attend", *GQKV, "--out", gout, "--grad-out", golden("dout"),
          "--dq", gout, expect="same file", out=[gout])

for f in failures:
    print("FAIL", f)
print(f"cli attend: {len(failures)} failures")
sys.exit(1 if failures else 0)
