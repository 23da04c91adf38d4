#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit inspect on the golden models of tests/golden/data: the statistics document of docs/CLI.md
(keys, softmax invariants, head softmax against softmax), --layers/--heads, heatmaps (PNG chunks
and CRCs checked and the image data inflated with zlib, SVG parsed with token labels), the leak
verdict, --prompt with token labels and --keyword through a tokenizer.json, and the error
conventions. Standard library only.
Usage: test_cli_inspect.py path/to/attnkit"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
import char_tokenizer  # noqa: E402

BIN = sys.argv[1]
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "data")
failures = []
PROMPT = [1, 17, 5, 60, 2, 33, 8, 91, 12, 4]


def run(*args):
    return subprocess.run([BIN, "inspect", *args], capture_output=True, text=True, timeout=300)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def bad_input(name, *args, expect):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(name, r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}")
    check(name, len(lines) == 1 and lines[0].startswith("attnkit:"), f"stderr {r.stderr!r}")
    check(name, expect in r.stderr, f"{expect!r} not in {r.stderr!r}")


def read_png(path):
    """(width, height, rows of RGB bytes) after checking the signature, IHDR and every CRC."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "signature"
    pos, idat, chunks = 8, b"", []
    width = height = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(ctype + body) & 0xFFFFFFFF == crc, f"CRC of {ctype}"
        chunks.append(ctype)
        if ctype == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color == 2, "8-bit RGB"
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    assert len(raw) == height * stride, "image data size"
    assert all(raw[r * stride] <= 4 for r in range(height)), "filter bytes"
    return width, height


def check_doc(name, doc, variant, n_heads, tokens):
    for key in ["variant", "tokens", "heads", "massive_activations"]:
        check(name, key in doc, f"missing key {key}")
    check(name, doc.get("variant") == variant, str(doc.get("variant")))
    check(name, doc.get("tokens") == tokens, str(doc.get("tokens")))
    check(name, len(doc.get("heads", [])) == n_heads, f"{len(doc.get('heads', []))} heads")
    for h in doc.get("heads", []):
        for key in ["layer", "head", "row_sum", "min", "max", "entropy", "sink_mass", "sparsity",
                    "max_abs_dp_vs_softmax"]:
            check(name, key in h, f"missing head key {key}")
        for key in ["min", "max", "mean"]:
            check(name, key in h.get("row_sum", {}), f"missing row_sum key {key}")
        check(name, 0 <= h["sink_mass"] <= 1 + 1e-9, str(h))
        check(name, 0 <= h["sparsity"] <= 1, str(h))
        check(name, 0 <= h["entropy"] <= math.log(tokens) + 1e-6, str(h))
    for m in doc.get("massive_activations", []):
        for key in ["layer", "token", "channel", "value", "ratio_to_median"]:
            check(name, key in m, f"missing massive key {key}")


softmax = os.path.join(GOLDEN, "softmax")
ids = ",".join(map(str, PROMPT))
with tempfile.TemporaryDirectory() as tmp:
    stats = os.path.join(tmp, "stats.json")
    maps = os.path.join(tmp, "maps")
    r = run("--model", softmax, "--prompt-ids", ids, "--stats", stats, "--heatmaps", maps,
            "--leak-check")
    check("softmax run", r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    check("softmax leak line", r.stdout.strip().splitlines() == ["leak: none"], repr(r.stdout))
    doc = json.load(open(stats))
    check_doc("softmax", doc, "softmax", 8, len(PROMPT))
    for h in doc["heads"]:
        name = f"softmax layer {h['layer']} head {h['head']}"
        check(name, abs(h["row_sum"]["min"] - 1) < 1e-5 and abs(h["row_sum"]["max"] - 1) < 1e-5,
              str(h["row_sum"]))
        check(name, 0 <= h["min"] <= h["max"] <= 1 + 1e-6, str(h))
        check(name, h["max_abs_dp_vs_softmax"] == 0, str(h))
    check("softmax leak key", doc.get("leak", {}).get("found") is False, str(doc.get("leak")))
    names = sorted(os.listdir(maps))
    want = sorted(f"layer{l}_head{h}.{e}" for l in range(2) for h in range(4) for e in ("png", "svg"))
    check("heatmap files", names == want, str(names))
    for f in names:
        path = os.path.join(maps, f)
        try:
            if f.endswith(".png"):
                w, hgt = read_png(path)
                check(f, w >= len(PROMPT) and hgt >= len(PROMPT) and w % len(PROMPT) == 0, f"{w}x{hgt}")
            else:
                root = ET.parse(path).getroot()
                check(f, root.tag.endswith("svg"), root.tag)
                texts = [t.text for t in root.iter() if t.tag.endswith("text")]
                for tok in PROMPT:
                    check(f, texts.count(str(tok)) >= 2, f"label {tok} not on both axes")
        except (AssertionError, ET.ParseError) as e:
            check(f, False, str(e))

    # Chosen layers and heads; the document goes to stdout as one line.
    r = run("--model", softmax, "--prompt-ids", ids, "--layers", "1", "--heads", "0,3")
    check("select run", r.returncode == 0, r.stderr)
    lines = r.stdout.strip().splitlines()
    check("select one line", len(lines) == 1, repr(r.stdout))
    if lines:
        doc = json.loads(lines[0])
        check_doc("select", doc, "softmax", 2, len(PROMPT))
        check("select heads", [(h["layer"], h["head"]) for h in doc["heads"]] == [(1, 0), (1, 3)],
              str(doc["heads"]))

    # Softmax across heads: rows do not sum to 1 and differ from softmax on the same inputs.
    r = run("--model", os.path.join(GOLDEN, "head-softmax"), "--prompt-ids", ids, "--leak-check")
    check("head-softmax run", r.returncode == 0, r.stderr)
    lines = r.stdout.strip().splitlines()
    check("head-softmax lines", len(lines) == 2 and lines[1] == "leak: none", repr(r.stdout))
    if lines:
        doc = json.loads(lines[0])
        check_doc("head-softmax", doc, "head-softmax", 8, len(PROMPT))
        check("head-softmax dp", all(h["max_abs_dp_vs_softmax"] > 1e-3 for h in doc["heads"]),
              str([h["max_abs_dp_vs_softmax"] for h in doc["heads"]]))
        check("head-softmax row sums", any(abs(h["row_sum"]["max"] - 1) > 1e-3 for h in doc["heads"]),
              str([h["row_sum"] for h in doc["heads"]]))

    # Errors: exit 2, one line, no partial output.
    bad_input("layers range", "--model", softmax, "--prompt-ids", ids, "--layers", "2",
              expect="--layers 2 is outside [0, 2)")
    bad_input("heads range", "--model", softmax, "--prompt-ids", ids, "--heads", "0,4",
              expect="--heads 4 is outside [0, 4)")
    bad_input("bad ids", "--model", softmax, "--prompt-ids", "1,x", expect="--prompt-ids")
    bad_input("vocab", "--model", softmax, "--prompt-ids", "1,97", expect="97 is outside [0, 97)")
    bad_input("no model", "--model", os.path.join(tmp, "nope"), "--prompt-ids", ids,
              expect="not a directory")
    bad_input("variant", "--model", softmax, "--prompt-ids", ids, "--variant", "bogus",
              expect="unknown activation 'bogus'")
    bad_input("option", "--model", softmax, "--prompt-ids", ids, "--bogus", expect="--bogus")
    bad_input("missing ids", "--model", softmax, expect="--prompt-ids")
    out = os.path.join(tmp, "missing", "s.json")
    bad_input("stats dir", "--model", softmax, "--prompt-ids", ids, "--stats", out, expect="s.json")
    check("no partial stats", not os.path.exists(os.path.join(tmp, "missing")), "created")

# --prompt TEXT, token labels and --keyword with the folder's tokenizer.json (a character-level
# BPE of the golden model's 97 ids, char_tokenizer.py).
with tempfile.TemporaryDirectory() as tmp:
    char_tokenizer.model_folder(softmax, tmp)
    text = "hello there, the end"
    want = char_tokenizer.encode(text)
    maps = os.path.join(tmp, "maps")
    r = run("--model", tmp, "--prompt", text, "--keyword", "the", "--heatmaps", maps)
    check("--prompt run", r.returncode == 0, r.stderr)
    if r.returncode == 0:
        doc = json.loads(r.stdout)
        check("--prompt ids", doc["token_ids"] == want, f"{doc['token_ids']} vs {want}")
        # The tokens overlapping each "the": decoded text offsets of every token.
        starts, at = [], 0
        for t in want:
            starts.append(at)
            at += len(char_tokenizer.SPELLING[t])
        starts.append(at)
        hits = set()
        k = text.find("the")
        while k >= 0:
            hits |= {j for j in range(len(want)) if starts[j] < k + 3 and starts[j + 1] > k}
            k = text.find("the", k + 1)
        kw = doc.get("keyword", {})
        check("--keyword positions", kw.get("positions") == sorted(hits), f"{kw} vs {sorted(hits)}")
        check("--keyword heads", len(kw.get("heads", [])) == 8 and
              all(0 <= h["mass"] <= 1 for h in kw["heads"]), str(kw))
        by_ids = run("--model", tmp, "--prompt-ids", ",".join(map(str, want)))
        check("--prompt equals --prompt-ids", by_ids.returncode == 0 and
              json.loads(by_ids.stdout)["heads"] == doc["heads"], by_ids.stderr)
        svg = open(os.path.join(maps, "layer0_head0.svg"), encoding="utf-8").read()
        check("token labels", ">he<" in svg and ">l<" in svg, "labels missing from the SVG")
    bad_input("keyword absent", "--model", tmp, "--prompt", text, "--keyword", "xyz",
              expect="does not occur")
    # A tokenizer.json attnkit cannot read: --prompt-ids still runs, with id labels and one
    # line on stderr; --prompt is an error naming the component.
    with open(os.path.join(tmp, "tokenizer.json"), "w") as f:
        f.write('{"model": {"type": "Unigram", "vocab": []}, "decoder": null}')
    r = run("--model", tmp, "--prompt-ids", "1,2,3", "--heatmaps", maps)
    check("unreadable tokenizer, ids", r.returncode == 0 and "Unigram" in r.stderr, r.stderr)
    svg = open(os.path.join(maps, "layer0_head0.svg"), encoding="utf-8").read()
    check("id labels", ">2<" in svg, "id labels missing")
    bad_input("unreadable tokenizer, text", "--model", tmp, "--prompt", "hi", expect="Unigram")
    bad_input("both prompts", "--model", tmp, "--prompt", text, "--prompt-ids", "1",
              expect="exactly one")
    bad_input("keyword without tokenizer", "--model", softmax, "--prompt-ids", ids, "--keyword",
              "the", expect="tokenizer.json")

r = run("--help")
check("--help", r.returncode == 0 and "usage: attnkit inspect" in r.stdout, r.stdout)

for f in failures:
    print("FAIL", f)
print(f"cli inspect: {len(failures)} failures")
sys.exit(1 if failures else 0)
