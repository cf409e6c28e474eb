#!/usr/bin/env python3
"""Diffs the test steps of an old commit against the step table now: every `report.step(...)`
of the old xtask/src/tests/mod.rs must have a step in `STEPS` that calls the same test
function with the same arguments (a short form may pass a smaller count). Prints the map,
and exits 1 if an old step has none.
Usage: tools/dev/steps-diff.py OLD_COMMIT   (from the repository root)"""
import re, subprocess, sys

old_rev = sys.argv[1] if len(sys.argv) > 1 else "c92334e"
old = subprocess.run(["git", "show", f"{old_rev}:xtask/src/tests/mod.rs"],
                     capture_output=True, text=True, check=True).stdout
new = open("xtask/src/tests/mod.rs").read()
SKIP = {"let", "Ok", "Some", "format", "as_mut", "unwrap", "take", "expect", "from", "bail", "new",
        "step", "pair", "nodes", "replace_b", "cluster", "context", "poweroff", "extend",
        "is_empty", "map", "unwrap_or_default", "anyhow", "tools_deb", "maintainer", "Step"}

def balanced(text, start):
    depth, i = 0, start
    while True:
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        elif c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        i += 1

def calls(body):
    """Functions a step's code calls or passes (`host::fmt`), by last path segment."""
    body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', body)
    names = re.findall(r"([A-Za-z_][\w:]*)\s*\(", body) + re.findall(r"\b([a-z_]+::[a-z_]+)\b(?!\s*[(:])", body)
    return [c.split("::")[-1] for c in names if c.split("::")[-1] not in SKIP]

olds = []
for m in re.finditer(r"report\.step\(", old):
    body = balanced(old, m.end() - 1)
    title = re.search(r'"((?:[^"\\]|\\.)*)"', body).group(1)
    olds.append((title, calls(body[body.index('"' + title) + len(title) + 2:])))
news = []
table = new[new.index("const STEPS"):new.index("\n];\n")]
for chunk in table.split("Step { id: ")[1:]:
    sid = re.match(r'"([^"]+)"', chunk).group(1)
    tier = re.search(r"tier: Tier::(\w+)", chunk).group(1)
    news.append((sid, tier, calls(chunk[chunk.index("run:"):])))
missing = 0
for title, cs in olds:
    fns = [c for c in cs if c not in ("boot",)]
    hits = [n for n in news if fns and all(f in n[2] for f in fns)]
    if not hits:  # a step with no test function of its own: the same title
        hits = [n for n in news if f'title: "{title}"' in table.split(f'id: "{n[0]}"')[1].split("Step {")[0]]
    if hits:
        print(f"= {','.join(fns):28} -> " + ", ".join(f"{n[0]} ({n[1].lower()})" for n in hits))
    else:
        missing += 1
        print(f"! {','.join(fns) or '?':28} no table step calls it: {title}")
print(f"{len(olds)} old steps, {len(news)} table steps ({sum(n[1] == 'Test' for n in news)} in the test tier), {missing} without a table step")
sys.exit(1 if missing else 0)
