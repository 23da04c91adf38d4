#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""The header layers of docs/ARCHITECTURE.md, section 1, hold: every header under
include/attnkit/<folder>/ includes attnkit headers only from the folders its layer may include,
so no folder includes one above it and the folders form no cycle; and no two headers include
each other through any chain (a file-level cycle).

Usage: test_layers.py REPO_ROOT   (standard library only)
"""
import re
import sys
from pathlib import Path

# What each folder may include besides itself (every folder may include core/). The table is
# docs/ARCHITECTURE.md's layer diagram; change both together.
ALLOWED = {
    "core": set(),
    "io": set(),
    "simd": set(),
    "policy": {"simd"},
    "kernel": {"simd"},
    "einsum": {"kernel", "simd"},
    "attention": {"policy", "kernel", "simd"},
    "block": {"kernel", "simd"},
    "modules": {"attention", "block", "policy", "kernel", "simd"},
    "model": {"modules", "attention", "block", "policy", "kernel", "simd", "io"},
    "inspect": {"model", "modules", "attention", "block", "policy", "kernel", "simd", "io"},
    "mpi": {"attention", "policy", "kernel", "simd"},
    "text": {"io"},
    "train": {"model", "modules", "attention", "block", "policy", "kernel", "simd", "io"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"attnkit/([^"]+)"', re.M)


def main() -> int:
    root = Path(sys.argv[1]) / "include" / "attnkit"
    failures = []
    graph = {}
    for header in sorted(root.rglob("*.hpp")):
        rel = header.relative_to(root).as_posix()
        folder = rel.split("/")[0] if "/" in rel else None
        targets = INCLUDE.findall(header.read_text(encoding="utf-8"))
        graph[rel] = targets
        if folder is None:
            continue  # the umbrella header includes everything
        if folder not in ALLOWED:
            failures.append(f"{rel}: folder '{folder}' is not in the layer table")
            continue
        for t in targets:
            tf = t.split("/")[0]
            if tf not in (folder, "core") and tf not in ALLOWED[folder]:
                failures.append(f"{rel} includes attnkit/{t}: {folder}/ may include "
                                f"{', '.join(sorted(ALLOWED[folder] | {'core'})) or 'core'} only")
    # The folder table itself must be acyclic (a layer order exists).
    order, state = [], {}

    def visit(f, stack):
        if state.get(f) == 1:
            failures.append("the layer table has a cycle: " + " -> ".join(stack + [f]))
            return
        if state.get(f) == 2:
            return
        state[f] = 1
        for g in sorted(ALLOWED[f]):
            visit(g, stack + [f])
        state[f] = 2
        order.append(f)

    for f in sorted(ALLOWED):
        visit(f, [])
    # No file-level include cycle.
    color = {}

    def walk(h, stack):
        if color.get(h) == 1:
            failures.append("include cycle: " + " -> ".join(stack[stack.index(h):] + [h]))
            return
        if color.get(h) == 2 or h not in graph:
            return
        color[h] = 1
        for t in graph[h]:
            walk(t, stack + [h])
        color[h] = 2

    for h in sorted(graph):
        walk(h, [])
    checked = sum(1 for h in graph if "/" in h)
    if failures:
        print("\n".join(failures))
        print(f"{len(failures)} layer violations in {checked} headers")
        return 1
    print(f"{checked} headers follow the layers (bottom up: {', '.join(order)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
