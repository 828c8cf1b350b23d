#!/usr/bin/env python3
"""Checks that the documentation cannot drift from the code it shows or the files it names.

  check_docs.py ROOT snippets   every snippet in README.md and docs/*.md equals its source
  check_docs.py ROOT links      every relative link (and its #anchor) and every docs/NAME.md
                                named in the text resolves
  check_docs.py ROOT fix        rewrites each snippet from its source (after editing a source)

A snippet is a fenced block right after a marker line in the document:

    <!-- snippet: sdk/example/hidden_l2.cpp hidden_l2 -->
    ```cpp
    ...
    ```

Its text must be the lines of the source file (a path from ROOT) between
`// [snippet: hidden_l2]` and `// [end snippet: hidden_l2]` (`#` instead of `//` in CMake
files), less their common indentation.
The sources are files the test suite builds (sdk/example is built by sdk_example_plugin),
so code shown in the docs compiles.
"""
import os
import re
import sys
import textwrap

MARKER = re.compile(r"^<!-- snippet: (\S+) (\S+) -->\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
DOC_NAME = re.compile(r"(?<![\w/.-])(docs/[\w.-]+\.md)")


def documents(root):
    docs = [os.path.join(root, "README.md")]
    docs_dir = os.path.join(root, "docs")
    docs += sorted(os.path.join(docs_dir, f) for f in os.listdir(docs_dir) if f.endswith(".md"))
    for extra in ("CHANGELOG.md",):
        if os.path.exists(os.path.join(root, extra)):
            docs.append(os.path.join(root, extra))
    return docs


def region(root, path, name):
    """The lines between the snippet markers of `name` in `path`, dedented."""
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        raise LookupError(f"{path} does not exist")
    lines = open(full, encoding="utf-8").read().split("\n")
    begin = [i for i, l in enumerate(lines) if l.strip() in (f"// [snippet: {name}]", f"# [snippet: {name}]")]
    end = [i for i, l in enumerate(lines) if l.strip() in (f"// [end snippet: {name}]", f"# [end snippet: {name}]")]
    if len(begin) != 1 or len(end) != 1 or end[0] <= begin[0]:
        raise LookupError(f"{path} has no single '// [snippet: {name}]' ... '// [end snippet: {name}]' region")
    return textwrap.dedent("\n".join(lines[begin[0] + 1:end[0]])).split("\n")


def snippets(lines):
    """(marker line index, source path, region name, first code line, closing fence line) per snippet."""
    out = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            out.append((i, m.group(1), m.group(2), None, None))
            continue
        close = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        out.append((i, m.group(1), m.group(2), i + 2, close))
    return out


def check_snippets(root, fix):
    problems, count = [], 0
    for doc in documents(root):
        lines = open(doc, encoding="utf-8").read().split("\n")
        rel = os.path.relpath(doc, root)
        changed = False
        for marker, path, name, first, close in reversed(snippets(lines)):
            count += 1
            where = f"{rel}:{marker + 1}"
            if first is None or close is None:
                problems.append(f"{where}: the snippet marker must be followed by a fenced code block")
                continue
            try:
                want = region(root, path, name)
            except LookupError as e:
                problems.append(f"{where}: {e}")
                continue
            have = lines[first:close]
            if have == want:
                continue
            if fix:
                lines[first:close] = want
                changed = True
                continue
            diff_at = next((k for k in range(max(len(have), len(want)))
                            if k >= len(have) or k >= len(want) or have[k] != want[k]), 0)
            problems.append(f"{where}: the snippet differs from {path} [{name}] at its line {diff_at + 1}:\n"
                            f"    doc:    {have[diff_at] if diff_at < len(have) else '(ends)'}\n"
                            f"    source: {want[diff_at] if diff_at < len(want) else '(ends)'}\n"
                            f"  (hint: python3 tests/docs/check_docs.py . fix)")
        if changed:
            open(doc, "w", encoding="utf-8").write("\n".join(lines))
            print(f"rewrote the snippets of {rel}")
    return problems, count


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    seen, out, fenced = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
        for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
            out.add(a)
    return out


def prose(path):
    """(line number, text) of the lines outside fenced code, with inline code kept."""
    fenced = False
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def check_links(root):
    problems, count = [], 0
    for doc in documents(root):
        rel = os.path.relpath(doc, root)
        base = os.path.dirname(doc)
        for n, line in prose(doc):
            for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
                target = m.group(1) or m.group(2)
                if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                    continue
                count += 1
                path, _, anchor = target.partition("#")
                full = os.path.normpath(os.path.join(base, path)) if path else doc
                if not os.path.exists(full):
                    problems.append(f"{rel}:{n}: link to {target}: {os.path.relpath(full, root)} does not exist")
                elif anchor and full.endswith(".md") and anchor not in anchors(full):
                    problems.append(f"{rel}:{n}: link to {target}: {os.path.relpath(full, root)} has no heading "
                                    f"with the anchor #{anchor}")
            for name in DOC_NAME.findall(line):
                count += 1
                if not os.path.exists(os.path.join(root, name)):
                    problems.append(f"{rel}:{n}: names {name}, which does not exist")
    return problems, count


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("snippets", "links", "fix"):
        sys.exit(__doc__)
    root, what = sys.argv[1], sys.argv[2]
    if what == "links":
        problems, count = check_links(root)
        kind = "links"
    else:
        problems, count = check_snippets(root, fix=what == "fix")
        kind = "snippets"
    for p in problems:
        print(p)
    print(f"{count} {kind} checked, {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
