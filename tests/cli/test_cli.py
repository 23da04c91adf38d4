#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""The conventions of docs/CLI.md for the attnkit program: --help, exit status 2 and one
"attnkit: ..." line on bad input. Standard library only. Usage: test_cli.py path/to/attnkit"""
import json
import subprocess
import sys

BIN = sys.argv[1]
failures = []


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)


def check(name, cond, detail=""):
    if not cond:
        failures.append(f"{name}: {detail}")


def bad_input(name, *args, expect):
    r = run(*args)
    lines = r.stderr.strip().splitlines()
    check(name, r.returncode == 2, f"exit {r.returncode}, stderr {r.stderr!r}")
    check(name, len(lines) == 1 and lines[0].startswith("attnkit:"), f"stderr {r.stderr!r}")
    check(name, expect in r.stderr, f"{expect!r} not in {r.stderr!r}")


r = run("--help")
check("--help", r.returncode == 0 and "info" in r.stdout, r.stdout)
r = run("info")
check("info exit", r.returncode == 0, r.stderr)
info = json.loads(r.stdout)
check("info keys", {"version", "simd_arch", "cpu_arch", "compiled_archs", "cpu_archs", "threads",
                    "openmp"} <= set(info), r.stdout)
check("info: the dispatched architecture is compiled in and the CPU runs it",
      info["simd_arch"] in info["compiled_archs"] and info["simd_arch"] in info["cpu_archs"],
      r.stdout)
check("info: cpu_arch is the best of cpu_archs", info["cpu_archs"][:1] == [info["cpu_arch"]],
      r.stdout)
# The program is built with -march=native: it runs the CPU's best kernels and prints no hint.
check("info: -march=native build runs the CPU's best set, no hint",
      info["simd_arch"] == info["cpu_arch"] and r.stderr == "", r.stdout + r.stderr)
r = run("info", "--threads", "1")
check("info --threads", json.loads(r.stdout)["threads"] == 1, r.stdout)
r = run("info", "--help")
check("info --help", r.returncode == 0 and "usage: attnkit info" in r.stdout, r.stdout)
bad_input("unknown command", "frobnicate", expect="unknown command 'frobnicate'")
bad_input("unknown option", "info", "--bogus", expect="--bogus")
bad_input("bad threads", "info", "--threads", "zero", expect="--threads")
bad_input("missing value", "info", "--threads", expect="--threads needs a value")

for f in failures:
    print("FAIL", f)
print(f"cli: {len(failures)} failures")
sys.exit(1 if failures else 0)
