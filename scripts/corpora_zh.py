"""Chinese sources for scripts/corpora.py (standard library only).

* npm `chinese-poetry` (JSON collections under package/dist): poem_docs() walks every JSON
  file and yields one document per poem (any object with a text field); subsample() keeps a
  deterministic, hash-chosen subset of a byte budget.
* Debian `fortunes-zh`: strip_ansi() removes the terminal colour escapes of its files.
"""

import hashlib
import json
import os
import re

# Directories of package/dist that are not poem text: `error` holds poems the collection
# quarantined for missing glyphs (written as □), `rank` holds search-engine hit counts,
# `strains` holds tone patterns (平仄) of the poems.
POETRY_EXCLUDE = ("dist/quantangshi/error/", "dist/rank/", "dist/strains/")
TEXT_FIELDS = ("paragraphs", "content", "para")  # body: list of lines or one string
HEADING_FIELDS = ("title", "rhythmic", "chapter")  # first non-empty one heads the document

_ANSI_RE = re.compile("\x1b\\[[0-9;]*[A-Za-z]")


def strip_ansi(text):
    """Remove ANSI colour escapes.  They nest in fortunes-zh (ESC[;ESC[34;1mm), so the rule is
    applied until nothing changes; stray ESC bytes left over are dropped."""
    while True:
        t = _ANSI_RE.sub("", text)
        if t == text:
            return t.replace("\x1b", "")
        text = t


def _lines(v):
    """Text field value -> list of lines, or None when it is not text (e.g. nested objects)."""
    if isinstance(v, str):
        return v.split("\n")
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return [l for x in v for l in x.split("\n")]
    return None


def _poems(obj):
    """Yield the text objects of one JSON value in document order.  An object is a poem if
    one of TEXT_FIELDS holds text; otherwise its list/object values are searched (the
    mengxue collections nest chapters inside `content`)."""
    if isinstance(obj, list):
        for x in obj:
            yield from _poems(x)
    elif isinstance(obj, dict):
        for f in TEXT_FIELDS:
            if _lines(obj.get(f)) is not None:
                yield obj
                return
        for v in obj.values():
            if isinstance(v, (list, dict)):
                yield from _poems(v)


def poem_text(p):
    """heading line (title | rhythmic | chapter), author line, then the body lines; empty
    lines dropped (a poem document never contains a blank line); "" if the body is empty."""
    body = next(_lines(p.get(f)) for f in TEXT_FIELDS if _lines(p.get(f)) is not None)
    if not any(l.strip() for l in body):
        return ""
    head = [next((p[f] for f in HEADING_FIELDS if isinstance(p.get(f), str) and p[f].strip()), "")]
    author = [p["author"]] if isinstance(p.get("author"), str) else []
    return "\n".join(l.strip() for l in head + author + body if l.strip())


def poetry_files(pkgdir):
    """JSON files under <pkgdir>/dist in sorted path order, minus POETRY_EXCLUDE; paths are
    relative to pkgdir ("dist/tang/...")."""
    res = []
    for d, dirs, fs in os.walk(os.path.join(pkgdir, "dist")):
        dirs.sort()
        for fn in fs:
            rel = os.path.relpath(os.path.join(d, fn), pkgdir).replace(os.sep, "/")
            if fn.endswith(".json") and not rel.startswith(POETRY_EXCLUDE):
                res.append(rel)
    return sorted(res)


def poem_docs(pkgdir, clean, files, skipped):
    """Yield (doc_id, text) for every poem, doc_id = chinese-poetry:<file>:<n> with n the
    0-based index of the poem in the file's traversal order.  `clean` normalises the text.
    A poem whose cleaned text equals an earlier one's (the collection repeats some Tang
    poems in two editions) is dropped, so duplicates cannot straddle train and val."""
    seen = set()
    ndup = 0
    for rel in poetry_files(pkgdir):
        with open(os.path.join(pkgdir, rel), encoding="utf-8") as f:
            data = json.load(f)
        files.append(rel)
        for i, p in enumerate(_poems(data)):
            text = clean(poem_text(p))
            if not text:
                continue
            h = hashlib.sha256(text.encode("utf-8")).digest()
            if h in seen:
                ndup += 1
                continue
            seen.add(h)
            yield "chinese-poetry:%s:%d" % (rel, i), text
    if ndup:
        skipped.append({"path": "dist/**", "reason": "%d exact duplicate poems dropped" % ndup})


def select_key(doc_id):
    """Subsampling order: independent of the train/val split hash (different prefix)."""
    return hashlib.sha256(("zh-select:" + doc_id).encode("utf-8")).digest()


def subsample(docs, budget):
    """docs: list of (doc_id, nbytes).  Visit documents in select_key order and keep each one
    that still fits into `budget` bytes.  Returns the set of kept indices; the caller writes
    them in source order."""
    keep, total = set(), 0
    for i in sorted(range(len(docs)), key=lambda i: select_key(docs[i][0])):
        n = docs[i][1]
        if total + n <= budget:
            keep.add(i)
            total += n
    return keep
