#!/usr/bin/env python3
"""The shape of the source tree, checked (ctest `layout`; docs/architecture.md):

- layering: a file under src/A may include only folders of A's layer or below,
  core, io -> dist -> kernels -> model -> data -> run -> train -> infer, inspect -> bench -> cli;
- no include cycle between any two folders (sub-folders included);
- at most 20 source files (.h/.cpp/.cu/.cuh) in a folder, at most 600 lines in a
  file, at most 120 lines in a function body (in src/ and in fuzz/, whose
  libFuzzer targets sit above every layer and may include any of them).
Prints every violation and exits 1 if there is one.
"""
import os
import re
import sys

LAYERS = [["core", "io"], ["dist"], ["kernels"], ["model"], ["data"], ["run"], ["train"], ["infer", "inspect"], ["bench"],
          ["cli"]]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}
EXTS = (".h", ".cpp", ".cu", ".cuh")
MAX_FILES, MAX_LINES, MAX_FUNCTION = 20, 600, 120


def function_lengths(text):
    """(first line, length) of every function body at namespace scope (a brace scanner, not a parser)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'R"(\w*)\((.*?)\)\1"', lambda m: '""' + "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])*'", "''", text)
    lines, stack, out = text.split("\n"), [], []
    for i, line in enumerate(lines):
        for pos, ch in enumerate(line):
            if ch == "{":
                head = (lines[i - 1] if i else "") + " " + line[:pos]
                scope = re.search(r"\b(namespace|class|struct|enum|union|extern)\b[^;(){}]*$", head)
                stack.append(("scope" if scope else "body", i))
            elif ch == "}" and stack:
                kind, start = stack.pop()
                if kind == "body" and all(k == "scope" for k, _ in stack):
                    out.append((start + 1, i - start + 1))
    return out


def walk(root):
    """(folder, its path below src/ or "fuzz", file names) for every folder of src/ and fuzz/."""
    src = os.path.join(root, "src")
    for folder, _, files in os.walk(src):
        yield folder, os.path.relpath(folder, src), files
    for folder, _, files in os.walk(os.path.join(root, "fuzz")):
        yield folder, "fuzz", files


def main(root):
    src = os.path.join(root, "src")
    problems, edges = [], {}
    for folder, rel, files in walk(root):
        sources = sorted(f for f in files if f.endswith(EXTS))
        if len(sources) > MAX_FILES:
            problems.append(f"{os.path.relpath(folder, root)}: {len(sources)} source files (at most {MAX_FILES})")
        for f in sources:
            path = os.path.join(folder, f)
            text = open(path, encoding="utf-8").read()
            name = os.path.relpath(path, root)
            if text.count("\n") > MAX_LINES:
                problems.append(f"{name}: {text.count(chr(10))} lines (at most {MAX_LINES})")
            for start, n in function_lengths(text):
                if n > MAX_FUNCTION:
                    problems.append(f"{name}:{start}: a function of {n} lines (at most {MAX_FUNCTION})")
            top = rel.split(os.sep)[0]
            if top == "fuzz":
                continue  # fuzz targets may include any layer (they are outside it); no edges into src
            for inc in re.findall(r'^#include "([^"]+)"', text, flags=re.M):
                target = os.path.dirname(inc)
                if not target or not os.path.isdir(os.path.join(src, target)):
                    continue
                ttop = target.split("/")[0]
                if ttop not in RANK or top not in RANK:
                    problems.append(f"{name}: folder {top if top not in RANK else ttop} has no layer in check_layout.py")
                elif RANK[ttop] > RANK[top]:
                    problems.append(f"{name}: includes {inc} from a higher layer ({ttop} above {top})")
                if target != rel.replace(os.sep, "/"):
                    edges.setdefault(rel.replace(os.sep, "/"), set()).add(target)
    # cycles between folders: depth-first search over the include graph
    state, path = {}, []

    def visit(n):
        state[n] = 1
        path.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                problems.append("include cycle: " + " -> ".join(path[path.index(m):] + [m]))
            elif m not in state:
                visit(m)
        path.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)
    for p in problems:
        print(p)
    print(f"check_layout: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
