#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit train: a short copy-task run of two variants gives one JSON line per evaluation with
the documented keys, the same numbers for the same seed, a well-formed SVG with one curve per
variant, and the error conventions (exit 2, one "attnkit: ..." line). Standard library only.
Usage: test_cli_train.py path/to/attnkit"""
import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

BIN = sys.argv[1]
failures = []
KEYS = {"variant", "step", "train_loss", "val_loss", "val_acc_copy", "val_acc_random"}


def run(*args):
    return subprocess.run([BIN, "train", *args], capture_output=True, text=True, timeout=600)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


with tempfile.TemporaryDirectory() as tmp:
    svg = os.path.join(tmp, "loss.svg")
    args = ["--variants", "softmax,naive-head-softmax", "--steps", "60", "--eval-every", "20",
            "--layers", "1", "--hidden", "16", "--half", "5", "--plot", svg, "--threads", "1"]
    r = run(*args)
    check("run", r.returncode == 0, r.stderr)
    lines = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
    check("line count", len(lines) == 6, r.stdout)
    for x in lines:
        check("keys", set(x) == KEYS, x)
        check("finite", all(math.isfinite(x[k]) for k in KEYS - {"variant"}), x)
        check("accuracy range", 0 <= x["val_acc_copy"] <= 1 and 0 <= x["val_acc_random"] <= 1, x)
    check("variants and steps",
          [(x["variant"], x["step"]) for x in lines] ==
          [(v, s) for v in ("softmax", "naive-head-softmax") for s in (20, 40, 60)], lines)
    # Training lowers the loss from chance (ln 16 on every position at the start).
    if lines:
        check("loss falls", lines[2]["val_loss"] < math.log(16), lines[2])
    # Deterministic: the same seed gives the same lines; another seed others.
    again = run(*args)
    check("same seed, same numbers", again.stdout == r.stdout, again.stdout)
    other = run(*args, "--seed", "2")
    check("other seed, other numbers", other.returncode == 0 and other.stdout != r.stdout,
          other.stderr)
    try:
        root = ET.parse(svg).getroot()
        paths = [p for p in root.iter("{http://www.w3.org/2000/svg}path")
                 if p.get("stroke-width") == "2"]
        texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
        check("svg curves", len(paths) == 2, len(paths))
        check("svg legend", "softmax" in texts and "naive-head-softmax" in texts, texts)
    except (ET.ParseError, OSError) as e:
        check("svg", False, e)

bad = [
    (["--variants", "softmax,bogus"], "unknown variant 'bogus'"),
    (["--steps", "-1"], "--steps"),
    (["--heads", "3"], "heads (3) must divide hidden"),
    (["--lr", "nan"], "--lr"),
    (["extra"], "unexpected argument"),
]
for args, needle in bad:
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(f"error {args}", r.returncode == 2 and len(lines) == 1 and lines[0].startswith("attnkit:")
          and needle in lines[0], r.stderr)
r = run("--help")
check("--help", r.returncode == 0 and "usage: attnkit train" in r.stdout, r.stdout)

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("attnkit train: all checks passed")
