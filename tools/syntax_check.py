#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""Compile-only pass over a configured CMake tree: every translation unit of its
compile_commands.json is run through the compiler with -fsyntax-only (parsing, semantic
analysis, every template instantiation and every front-end warning; no code generation).
Translation units compiled with ATTNKIT_COMPILE_FAIL (tests/compile_fail) must instead fail
with an error that names attnkit.

With --codegen each translation unit is compiled with its own flags, code generation and
optimization included, into /dev/null (no object file, no link): the warnings that only the
optimizer reports (-Wuninitialized, -Wmaybe-uninitialized, -Wrestrict, ...) are seen too.

The test command uses it for the second compiler (clang++-14 with -Werror), where a full
optimizing build of every target would double the time of the test command, and with
--codegen for the instruction set the host does not run (tools/test.sh).

Usage: tools/syntax_check.py BUILD_DIR [-j N] [--only REGEX] [--exclude REGEX] [--codegen]
Standard library only.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import time


def check_command(command: str, codegen: bool = False) -> list:
    """The compile command with the output dropped and -fsyntax-only added (codegen: the
    compile command writing its object file to /dev/null)."""
    args = shlex.split(command)
    out = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD") or a.startswith("-MF") or a.startswith("-MT"):
            if a in ("-MF", "-MT"):
                skip = True
            continue
        out.append(a)
    if codegen:
        out[1:1] = ["-c", "-o", os.devnull]
    else:
        out.insert(1, "-fsyntax-only")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", default=None, help="check only files whose path matches this regex")
    ap.add_argument("--exclude", default=None, help="skip files whose path matches this regex")
    ap.add_argument("--codegen", action="store_true",
                    help="compile with code generation into /dev/null instead of -fsyntax-only")
    a = ap.parse_args()
    db_path = os.path.join(a.build_dir, "compile_commands.json")
    try:
        with open(db_path, encoding="utf-8") as f:
            db = json.load(f)
    except (OSError, ValueError) as e:
        print(f"syntax_check: cannot read {db_path}: {e} "
              "(configure with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)", file=sys.stderr)
        return 2
    if not isinstance(db, list) or not db:
        print(f"syntax_check: {db_path} lists no translation unit", file=sys.stderr)
        return 2
    entries = []
    seen = set()
    for e in db:
        cmd = e.get("command")
        if cmd is None and "arguments" in e:
            cmd = shlex.join(e["arguments"])
        key = (e["file"], cmd)
        if a.only and not re.search(a.only, e["file"]):
            continue
        if a.exclude and re.search(a.exclude, e["file"]):
            continue
        if key in seen:
            continue
        seen.add(key)
        entries.append((e["directory"], e["file"], check_command(cmd, a.codegen)))

    if not entries:
        print(f"syntax_check: no translation unit of {db_path} matches the filters", file=sys.stderr)
        return 2

    def run(entry):
        directory, file, args = entry
        t0 = time.monotonic()
        p = subprocess.run(args, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        ok = p.returncode == 0
        if "-DATTNKIT_COMPILE_FAIL" in args:
            # A promised compile error (tests/compile_fail): it must fail, naming attnkit.
            ok = p.returncode != 0 and re.search(r"error: [^\n]*attnkit: ", p.stdout) is not None
            return file + " (ATTNKIT_COMPILE_FAIL)", ok, "" if ok else p.stdout, \
                time.monotonic() - t0
        return file, ok, p.stdout, time.monotonic() - t0

    t0 = time.monotonic()
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for i, (file, ok, out, secs) in enumerate(pool.map(run, entries), 1):
            rel = os.path.relpath(file)
            print(f"[{i}/{len(entries)}] {rel} ({secs:.1f} s){'' if ok else ' FAILED'}",
                  flush=True)
            if not ok or out.strip():
                print(out, end="" if out.endswith("\n") else "\n", flush=True)
            if not ok:
                failed.append(rel)
    print(f"syntax_check: {len(entries)} translation units in {time.monotonic() - t0:.0f} s, "
          f"{len(failed)} failed")
    for f in failed:
        print(f"  FAILED {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
