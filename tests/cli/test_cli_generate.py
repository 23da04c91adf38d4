#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit generate on the golden models of tests/golden/data (tests/golden/make_golden.py):
the greedy continuation token for token (with the KV cache, as PyTorch's cached greedy decoding
gives it), --variant, --dump-logits against logits.npy, seeded sampling, the JSON line and the
error conventions. Standard library only. Usage: test_cli_generate.py path/to/attnkit"""
import json
import os
import struct
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "data")
failures = []


def run(*args):
    return subprocess.run([BIN, "generate", *args], capture_output=True, text=True, timeout=300)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def last_json(r):
    lines = r.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def read_npy_f32(path):
    """A float32 C-order .npy (version 1.0) as (shape, flat list)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY"
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    assert "'<f4'" in header and "'fortran_order': False" in header, header
    shape = tuple(int(x) for x in header.split("'shape': (")[1].split(")")[0].split(",") if x.strip())
    n = 1
    for s in shape:
        n *= s
    return shape, list(struct.unpack(f"<{n}f", data[10 + hlen:10 + hlen + 4 * n]))


variants = sorted(d for d in os.listdir(GOLDEN) if os.path.isfile(os.path.join(GOLDEN, d, "greedy.json")))
check("golden folders", len(variants) >= 9, f"found {variants}")
for v in variants:
    d = os.path.join(GOLDEN, v)
    g = json.load(open(os.path.join(d, "greedy.json")))
    prompt = ",".join(map(str, g["prompt_ids"]))
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "logits.npy")
        r = run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", str(len(g["greedy"])),
                "--greedy", "--dump-logits", dump)
        check(v, r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
        out = last_json(r)
        check(v, out is not None and out["ids"] == g["greedy_cached"],
              f"ids {out and out['ids']} != PyTorch {g['greedy_cached']}")
        if out:
            for key in ["prompt_tokens", "new_tokens", "prefill_ms", "tokens_per_s", "mode",
                        "memory_tokens", "mean_retention", "sparsity"]:
                check(v, key in out, f"missing key {key}")
            check(v, out["prompt_tokens"] == len(g["prompt_ids"]) and out["new_tokens"] == 8, str(out))
            check(v, out["memory_tokens"] == len(g["prompt_ids"]) + 7, str(out))
        if os.path.exists(dump):
            shape, got = read_npy_f32(dump)
            wshape, want = read_npy_f32(os.path.join(d, "logits.npy"))
            check(v, shape == wshape, f"dump shape {shape} vs {wshape}")
            err = max(abs(a - b) for a, b in zip(got, want))
            check(v, err <= 1e-4, f"dumped logits differ by {err}")
        else:
            check(v, False, "no --dump-logits file")

# --variant overrides the config's attnkit_activation: sigmoid-bias weights under plain sigmoid
# differ from the golden continuation; naming the right one reproduces it.
d = os.path.join(GOLDEN, "sigmoid-bias")
g = json.load(open(os.path.join(d, "greedy.json")))
prompt = ",".join(map(str, g["prompt_ids"]))
same = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--variant", "sigmoid-bias"))
check("variant", same and same["ids"] == g["greedy_cached"], str(same))
other = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--variant", "softmax"))
check("variant override", other and other["ids"] != g["greedy_cached"], str(other))

# Seeded sampling: reproducible, seed-dependent, top-k 1 is greedy.
d = os.path.join(GOLDEN, "softmax")
g = json.load(open(os.path.join(d, "greedy.json")))
prompt = ",".join(map(str, g["prompt_ids"]))
a = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "12", "--temperature", "1.5", "--seed", "7"))
b = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "12", "--temperature", "1.5", "--seed", "7"))
c = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "12", "--temperature", "1.5", "--seed", "8"))
check("sampling reproducible", a and b and a["ids"] == b["ids"], f"{a} {b}")
check("sampling seed-dependent", a and c and a["ids"] != c["ids"], f"{a} {c}")
k1 = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--temperature", "2", "--top-k", "1", "--seed", "3"))
check("top-k 1 is greedy", k1 and k1["ids"] == g["greedy_cached"], str(k1))
p0 = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--temperature", "2", "--top-p", "1e-9", "--seed", "3"))
check("tiny top-p is greedy", p0 and p0["ids"] == g["greedy_cached"], str(p0))


def bad_input(name, *args, expect):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(name, r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}")
    check(name, len(lines) == 1 and lines[0].startswith("attnkit:"), f"stderr {r.stderr!r}")
    check(name, expect in r.stderr, f"{expect!r} not in {r.stderr!r}")


bad_input("no model", "--prompt-ids", "1", expect="--model")
bad_input("missing dir", "--model", "/nonexistent/dir", "--prompt-ids", "1", expect="/nonexistent/dir")
bad_input("bad ids", "--model", d, "--prompt-ids", "1,x", expect="--prompt-ids")
bad_input("id range", "--model", d, "--prompt-ids", "1,97", expect="token id 97")
bad_input("prompt text", "--model", d, "--prompt", "hello", expect="--prompt-ids")
bad_input("variant", "--model", d, "--prompt-ids", "1", "--variant", "cosine", expect="cosine")
bad_input("greedy and sampling", "--model", d, "--prompt-ids", "1", "--greedy", "--temperature", "1", expect="--greedy")
bad_input("temperature", "--model", d, "--prompt-ids", "1", "--temperature", "0", expect="--temperature")
bad_input("cache", "--model", d, "--prompt-ids", "1", "--cache", "window=4", expect="--cache")
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write('{"hidden_size": 64}')
    bad_input("bad config", "--model", tmp, "--prompt-ids", "1", expect="config.json")
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write(open(os.path.join(d, "config.json")).read())
    bad_input("no weights", "--model", tmp, "--prompt-ids", "1", expect="model.safetensors")

r = subprocess.run([BIN, "generate", "--help"], capture_output=True, text=True)
check("help", r.returncode == 0 and "--prompt-ids" in r.stdout, r.stdout)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"test_cli_generate: all checks passed ({len(variants)} golden models)")
