#!/usr/bin/env python3
"""The module graph of consentfs: which top-level module of src/ uses which (`crate::x` paths,
comments left out), and its cycles (strongly connected groups).

    contrib/module-graph.py [SRC_DIR] [--with-tests]

Test modules (`#[cfg(test)] mod ...` and tests.rs files) are left out unless --with-tests: a
test may build a store with its catalog without making the code depend on it. Exits 1 when
there is a cycle, so it can run in CI.
"""
import os
import re
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
root = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
with_tests = "--with-tests" in sys.argv


def code(path):
    if not with_tests and path.endswith("/tests.rs"):
        return ""
    lines = open(path).readlines()
    out = []
    for n, line in enumerate(lines):
        after = lines[n + 1].strip() if n + 1 < len(lines) else ""
        if not with_tests and line.strip() == "#[cfg(test)]" and after.startswith("mod "):
            break
        if not line.strip().startswith("//"):
            out.append(line)
    return "".join(out)


files = {}
for d, _, names in os.walk(root):
    for f in names:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            top = os.path.relpath(p, root).split("/")[0].removesuffix(".rs")
            if top not in ("lib", "main"):
                files.setdefault(top, []).append(p)
edges = {m: set() for m in files}
for m, paths in files.items():
    for p in paths:
        src = code(p)
        used = set(re.findall(r"crate::(\w+)", src))
        for group in re.findall(r"use crate::\{([^;]*)\};", src, re.S):
            used |= set(re.findall(r"(?:^|[,{\s])(\w+)(?=::|\s*[,}]|\s*$)", group))
        edges[m] |= {u for u in used if u in files and u != m}

for m in sorted(edges):
    print(m, "->", " ".join(sorted(edges[m])))

index, low, stack, on, groups = {}, {}, [], set(), []


def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop()
            on.discard(w)
            group.append(w)
            if w == v:
                break
        if len(group) > 1:
            groups.append(sorted(group))


for v in sorted(edges):
    if v not in index:
        visit(v)
print("cycles:", groups if groups else "none")
sys.exit(1 if groups else 0)
