#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit generate on the golden models of tests/golden/data (tests/golden/make_golden.py):
the greedy continuation token for token (with the KV cache, as PyTorch's cached greedy decoding
gives it), --variant, --dump-logits against logits.npy, seeded sampling, end-of-sequence tokens
and --ignore-eos, the JSON line and the error conventions. Standard library only. Usage: test_cli_generate.py path/to/attnkit"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import char_tokenizer  # noqa: E402

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

# --memory modes and --cache policies: the stats JSON line, per layer too.
layers = json.load(open(os.path.join(d, "config.json")))["num_hidden_layers"]
n_prompt = len(g["prompt_ids"])


def stats_ok(name, out, mode, cache):
    check(name, out is not None, "no JSON line")
    if not out:
        return
    for key in ["ids", "prompt_tokens", "new_tokens", "prefill_ms", "tokens_per_s", "mode",
                "memory_tokens", "mean_retention", "sparsity", "cache", "kv_dtype", "layers"]:
        check(name, key in out, f"missing key {key}")
    check(name, out.get("mode") == mode and out.get("cache") == cache, str(out))
    check(name, len(out.get("layers", [])) == layers, str(out))
    for i, l in enumerate(out.get("layers", [])):
        check(name, l.get("layer") == i and set(l) >= {"memory_tokens", "mean_retention", "sparsity"},
              str(l))
    check(name, 0 <= out.get("sparsity", -1) < 1 and 0 < out.get("mean_retention", 0) <= 1, str(out))


for mode in ["baseline", "soft-delete", "sparse"]:
    r = run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--memory", mode)
    check(mode, r.returncode == 0, r.stderr)
    out = last_json(r)
    stats_ok(mode, out, mode, "full")
    if out:
        # Nothing is old enough to fade below 0.01 in 8 steps: every token is still held.
        check(mode, out["memory_tokens"] == n_prompt + 7 and out["sparsity"] == 0, str(out))
        check(mode, (out["mean_retention"] == 1) == (mode == "baseline"), str(out))
        if mode == "baseline":
            check(mode, out["ids"] == g["greedy_cached"], str(out))
# Long enough that unreinforced tokens fade (R = exp(-0.05 t / 5) < 0.01 after 461 steps).
long = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "700", "--memory", "sparse"))
stats_ok("sparse long", long, "sparse", "full")
if long:
    check("sparse long", long["sparsity"] > 0 and long["memory_tokens"] < n_prompt + 699, str(long))
    for l in long["layers"]:
        check("sparse long", l["mean_retention"] >= 0.01 and
              abs(l["sparsity"] - (1 - l["memory_tokens"] / (n_prompt + 699))) < 1e-5, str(l))
soft = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "700", "--memory", "soft-delete"))
stats_ok("soft-delete long", soft, "soft-delete", "full")
if soft and long:
    check("soft-delete long", soft["memory_tokens"] == n_prompt + 699 and soft["sparsity"] == 0, str(soft))
    check("soft-delete long", soft["mean_retention"] < 0.5, str(soft))
# A window or sink cache at least as long as the sequence is the full cache; shorter ones hold
# exactly W or S + W tokens.
big = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--cache", "window=64"))
stats_ok("window=64", big, "baseline", "window=64")
check("window=64", big and big["ids"] == g["greedy_cached"], str(big))
sinks = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "8", "--cache", "sinks=4,60"))
check("sinks=4,60", sinks and sinks["ids"] == g["greedy_cached"], str(sinks))
for spec, held in [("window=4", 4), ("sinks=2,3", 5)]:
    out = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "40", "--cache", spec))
    stats_ok(spec, out, "baseline", spec)
    if out:
        check(spec, out["memory_tokens"] == held and len(out["ids"]) == 40, str(out))
        check(spec, abs(out["sparsity"] - (1 - held / (n_prompt + 39))) < 1e-5, str(out))

# --kv-dtype: the caches store bf16 or f16 keys and values; the prefill logits move by their
# rounding only (never 0: the storage really is 16-bit), and the JSON line names the dtype.
kv_tmp = tempfile.TemporaryDirectory()
ref_dump = os.path.join(kv_tmp.name, "kv_f32.npy")
ref = last_json(run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "6",
                    "--dump-logits", ref_dump))
check("kv-dtype f32", ref and ref.get("kv_dtype") == "f32", str(ref))
for kvd, rel in [("bf16", 0.05), ("f16", 0.01)]:
    dump = os.path.join(kv_tmp.name, f"kv_{kvd}.npy")
    for cache_args in [(), ("--cache", "sinks=2,6"), ("--memory", "sparse")]:
        r = run("--model", d, "--prompt-ids", prompt, "--max-new-tokens", "6", "--kv-dtype", kvd,
                "--dump-logits", dump, *cache_args)
        out = last_json(r)
        name = f"kv-dtype {kvd} {' '.join(cache_args)}"
        check(name, r.returncode == 0 and out and out.get("kv_dtype") == kvd, r.stderr + str(out))
        check(name, out and len(out.get("ids", [])) == 6, str(out))
    if os.path.exists(dump) and os.path.exists(ref_dump):
        _, want = read_npy_f32(ref_dump)
        _, got = read_npy_f32(dump)
        scale = max(abs(x) for x in want)
        err = max(abs(a - b) for a, b in zip(got, want))
        check(f"kv-dtype {kvd} logits", 0 < err <= rel * scale, f"differ by {err}, scale {scale}")

kv_tmp.cleanup()
# --prompt TEXT with the folder's tokenizer.json (a character-level BPE of the golden model's 97
# ids): the same continuation as --prompt-ids of the prompt's ids, streamed as text.
with tempfile.TemporaryDirectory() as tmp:
    char_tokenizer.model_folder(d, tmp)
    text = "hello there"
    want_ids = char_tokenizer.encode(text)
    by_ids = last_json(run("--model", tmp, "--prompt-ids", ",".join(map(str, want_ids)),
                           "--max-new-tokens", "12", "--ignore-eos"))
    r = run("--model", tmp, "--prompt", text, "--max-new-tokens", "12", "--ignore-eos")
    out = last_json(r)
    check("--prompt ids", out is not None and by_ids is not None and out["ids"] == by_ids["ids"]
          and out["prompt_tokens"] == len(want_ids), f"{out} vs {by_ids}")
    if out is not None:
        spelled = "".join(char_tokenizer.SPELLING[t] for t in out["ids"])
        streamed = r.stdout[: r.stdout.rstrip("\n").rfind("\n")]
        check("--prompt text", out.get("text") == spelled, f"{out.get('text')!r} vs {spelled!r}")
        check("--prompt stream", streamed == spelled, f"{streamed!r} vs {spelled!r}")
    with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
        f.write('{"model": {"type": "Unigram", "vocab": []}, "decoder": null}')
    r = run("--model", tmp, "--prompt", text)
    check("--prompt unigram", r.returncode == 2 and "the model Unigram" in r.stderr, r.stderr)


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
bad_input("cache", "--model", d, "--prompt-ids", "1", "--cache", "ring=4", expect="--cache")
bad_input("kv dtype", "--model", d, "--prompt-ids", "1", "--kv-dtype", "fp8", expect="--kv-dtype")
bad_input("cache window", "--model", d, "--prompt-ids", "1", "--cache", "window=0", expect="--cache")
bad_input("memory", "--model", d, "--prompt-ids", "1", "--memory", "forget", expect="--memory")
bad_input("memory and cache", "--model", d, "--prompt-ids", "1", "--cache", "window=4", "--memory",
          "sparse", expect="--memory")
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write('{"hidden_size": 64}')
    bad_input("bad config", "--model", tmp, "--prompt-ids", "1", expect="config.json")
    with open(os.path.join(tmp, "config.json"), "w") as f:
        f.write(open(os.path.join(d, "config.json")).read())
    bad_input("no weights", "--model", tmp, "--prompt-ids", "1", expect="model.safetensors")

# End-of-sequence tokens: generation_config.json's eos_token_id (else config.json's) ends the
# continuation after the token, unless --ignore-eos.
d = os.path.join(GOLDEN, "softmax")
g = json.load(open(os.path.join(d, "greedy.json")))
prompt = ",".join(map(str, g["prompt_ids"]))
full = g["greedy_cached"]
eos = full[2]
want = full[: full.index(eos) + 1]
with tempfile.TemporaryDirectory() as tmp:
    m = os.path.join(tmp, "model")
    shutil.copytree(d, m)
    with open(os.path.join(m, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [96, eos]}, f)
    r = run("--model", m, "--prompt-ids", prompt, "--max-new-tokens", "8", "--greedy")
    out = last_json(r)
    check("eos", r.returncode == 0 and out is not None and out["ids"] == want and out["stop"] == "eos"
          and out["new_tokens"] == len(want), f"exit {r.returncode}: {r.stdout} {r.stderr}, want {want}")
    r = run("--model", m, "--prompt-ids", prompt, "--max-new-tokens", "8", "--greedy", "--ignore-eos")
    out = last_json(r)
    check("ignore eos", r.returncode == 0 and out is not None and out["ids"] == full
          and out["stop"] == "length", f"{r.stdout} {r.stderr}")
    # config.json's eos_token_id when there is no generation_config.json.
    os.remove(os.path.join(m, "generation_config.json"))
    config = json.load(open(os.path.join(m, "config.json")))
    config["eos_token_id"] = eos
    with open(os.path.join(m, "config.json"), "w") as f:
        json.dump(config, f)
    r = run("--model", m, "--prompt-ids", prompt, "--max-new-tokens", "8", "--greedy")
    out = last_json(r)
    check("config eos", r.returncode == 0 and out is not None and out["ids"] == want, f"{r.stdout} {r.stderr}")
    # An id outside the vocabulary is an error naming the file.
    with open(os.path.join(m, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": 97}, f)
    bad_input("eos range", "--model", m, "--prompt-ids", prompt, expect="generation_config.json")

r = subprocess.run([BIN, "generate", "--help"], capture_output=True, text=True)
check("help", r.returncode == 0 and "--prompt-ids" in r.stdout, r.stdout)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"test_cli_generate: all checks passed ({len(variants)} golden models)")
