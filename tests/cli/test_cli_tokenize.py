#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""attnkit tokenize against the tokenizer oracle (tests/text/oracle.mjs writes it): the ids of the
whole corpus with and without the special tokens, a line's ids and tokens, --ids back to the
oracle's text, and the error conventions. Standard library only.
Usage: test_cli_tokenize.py path/to/attnkit path/to/tokenizer_oracle.json"""
import json
import subprocess
import sys
import tempfile

BIN, ORACLE = sys.argv[1], sys.argv[2]
failures = []


def run(*args):
    return subprocess.run([BIN, "tokenize", *args], capture_output=True, timeout=300)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def out_json(r):
    return json.loads(r.stdout.decode("utf-8"))


with open(ORACLE, encoding="utf-8") as f:
    oracle = json.load(f)

for name, o in oracle.items():
    model, texts = o["file"], o["texts"]
    with tempfile.NamedTemporaryFile("wb", suffix=".txt") as corpus:
        corpus.write(texts[-1].encode("utf-8"))  # the whole corpus is the last text
        corpus.flush()
        r = run("--model", model, "--file", corpus.name)
        check(f"{name} --file", r.returncode == 0 and out_json(r)["ids"] == o["ids_special"][-1],
              r.stderr.decode(errors="replace"))
        r = run("--model", model, "--file", corpus.name, "--no-special")
        check(f"{name} --file --no-special", r.returncode == 0 and out_json(r)["ids"] == o["ids"][-1],
              r.stderr.decode(errors="replace"))
    for i in (8, 12):  # Chinese, emoji
        r = run("--model", model, "--text", texts[i], "--no-special")
        got = out_json(r) if r.returncode == 0 else {}
        check(f"{name} --text line {i}", got.get("ids") == o["ids"][i], r.stderr.decode(errors="replace"))
        check(f"{name} tokens line {i}", len(got.get("tokens", [])) == len(o["ids"][i]))
        ids = ",".join(str(x) for x in o["ids"][i])
        r = run("--model", model, "--ids", ids)
        check(f"{name} --ids line {i}", r.returncode == 0 and out_json(r)["text"] == o["decoded"][i],
              r.stdout.decode(errors="replace"))

# Errors: exit status 2 and one "attnkit: ..." line.
llama3 = oracle["llama3"]["file"]
bad = [
    (["--text", "x"], "--model"),
    (["--model", llama3], "exactly one"),
    (["--model", llama3, "--text", "a", "--ids", "1"], "exactly one"),
    (["--model", llama3, "--ids", "1,x"], "is not a token id"),
    (["--model", llama3, "--ids", "999999999"], "not in the vocabulary"),
    (["--model", llama3, "--text", b"\xc3\x28"], "not valid UTF-8"),
    (["--model", "/nonexistent", "--text", "a"], "no tokenizer.json"),
    (["--model", llama3, "--file", "/nonexistent/file"], "cannot read"),
]
for args, want in bad:
    r = run(*args)
    err = r.stderr.decode(errors="replace")
    check(f"error {args!r}", r.returncode == 2 and err.startswith("attnkit: ") and want in err, err)

if failures:
    print("\n".join(failures))
print(f"{len(oracle) * 6 + len(bad) - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
