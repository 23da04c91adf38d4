#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# SPDX-FileCopyrightText: attnkit contributors
"""The repository's documentation holds together:

- every relative link of README.md and docs/*.md resolves: the file or folder exists, and a
  `#fragment` into a Markdown file names one of its headings (GitHub's anchor rules);
- README.md's examples table lists every folder of examples/;
- no file of the repository refers to documents outside it (design notes, seed notes, issue
  trackers, a sibling folder), and every mention of docs/NAME.md names a file that exists.

Usage: test_docs.py [REPO_ROOT]   (default: two folders up). Standard library only.
Prints 'N passed, N failed' and exits 1 on any failure.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP_DIRS = {".git", "build", "single_include", "node_modules", "__pycache__"}
TEXT_EXT = {".md", ".hpp", ".cpp", ".h", ".py", ".sh", ".txt", ".cmake", ".in", ".json", ""}

passed = 0
failures = []


def check(ok: bool, what: str) -> None:
    global passed
    if ok:
        passed += 1
    else:
        failures.append(what)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to -."""
    h = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(md_path: str) -> set:
    out, seen, fence = set(), {}, False
    with open(md_path, encoding="utf-8") as f:
        for line in f:
            if line.lstrip().startswith("```"):
                fence = not fence
            m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if m and not fence:
                s = slug(m.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(md_path: str):
    """(line number, target) of every inline Markdown link outside code fences and spans."""
    fence = False
    with open(md_path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if line.lstrip().startswith("```"):
                fence = not fence
                continue
            if fence:
                continue
            line = re.sub(r"`[^`]*`", "", line)
            for m in re.finditer(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
                yield no, m.group(1)


def check_links(md_path: str) -> None:
    rel = os.path.relpath(md_path, ROOT)
    for no, target in links(md_path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, frag = target.partition("#")
        dest = md_path if not path else os.path.normpath(
            os.path.join(os.path.dirname(md_path), path))
        where = f"{rel}:{no}: link '{target}'"
        if not os.path.exists(dest):
            check(False, f"{where}: {os.path.relpath(dest, ROOT)} does not exist")
            continue
        if not os.path.abspath(dest).startswith(ROOT + os.sep):
            check(False, f"{where}: points outside the repository")
            continue
        if frag and dest.endswith(".md"):
            check(frag in anchors(dest), f"{where}: no heading '#{frag}' in "
                                         f"{os.path.relpath(dest, ROOT)}")
        else:
            check(True, where)


def repo_files():
    for d, dirs, files in os.walk(ROOT):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
        if os.path.relpath(d, ROOT).startswith(os.path.join("tests", "golden", "data")):
            continue
        for f in files:
            if os.path.splitext(f)[1] in TEXT_EXT:
                yield os.path.join(d, f)


# Documents a user does not have. A bare ARCHITECTURE.md or CLI.md outside docs/ means the
# design folder's (ours are spelled docs/NAME.md); inside docs/ it is the sibling file.
OUTSIDE = re.compile(r"design notes|seed notes|\bseed 0\d\d\b|\.\./shared\b|\bissues?\b|STYLE\.md")
BARE = re.compile(r"(?<![\w/.])(ARCHITECTURE|CLI)\.md")
DOCS_REF = re.compile(r"docs/([\w.-]+\.md)")


def main() -> int:
    md = [os.path.join(ROOT, "README.md")]
    docs = os.path.join(ROOT, "docs")
    check(os.path.isdir(docs), "docs/ exists")
    if os.path.isdir(docs):
        md += sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))
    for name in ("ARCHITECTURE.md", "CLI.md"):
        check(os.path.isfile(os.path.join(docs, name)), f"docs/{name} exists")
    check(os.path.isfile(os.path.join(ROOT, "LICENSE")), "LICENSE exists")
    for m in md:
        check_links(m)

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for ex in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if os.path.isdir(os.path.join(ROOT, "examples", ex)):
            check(f"examples/{ex}/" in readme, f"README.md: the examples table lists {ex}")

    me = os.path.abspath(__file__)
    for path in repo_files():
        if os.path.abspath(path) == me:
            continue
        rel = os.path.relpath(path, ROOT)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (UnicodeDecodeError, OSError):
            continue
        in_docs = rel.startswith("docs" + os.sep)
        bad = [f"{rel}:{no}: {line.strip()[:100]}" for no, line in enumerate(lines, 1)
               if OUTSIDE.search(line) or (not in_docs and BARE.search(line))]
        check(not bad, "refers to documents outside the repository:\n    " + "\n    ".join(bad))
        for no, line in enumerate(lines, 1):
            for m in DOCS_REF.finditer(line):
                check(os.path.isfile(os.path.join(ROOT, "docs", m.group(1))),
                      f"{rel}:{no}: docs/{m.group(1)} does not exist")

    for f in failures:
        print("FAILED:", f)
    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
