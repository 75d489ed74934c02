"""The `mixed` corpus for H-Model routing experiments (shared/spec/data.md section 5), built by
scripts/corpora.py from the en, zh and code corpora (standard library only).

train.bin / val.bin: equal byte shares of the three languages' train / val parts, mixed at
document granularity.  windows.bin + windows.jsonl: an analysis set of 512-byte windows cut
from the languages' val.bin only, with a language label, plus "switch" windows that join two
languages at a UTF-8 character boundary.  Every choice is a pure function of sha256 keys, so
rebuilds are byte-identical.
"""

import hashlib
import json
import os
import time

import corpora

LANGS = ("en", "zh", "code")
WINDOW = 512
SWITCH_MIN, SWITCH_MAX = 64, WINDOW - 64  # switch offset range: >= 64 bytes of each language

SHARE_RULE = ("per part (train, val): share = min over languages of the part's bytes; each "
              "language's documents are visited in order of sha256('mixed:<part>:<lang>:<i>') "
              "(i = document index in <lang>/<part>.bin) and kept while the kept bytes stay <= share")
ORDER_RULE = ("kept documents of each language stay in that hash order; the next document comes "
              "from the language with the smallest fraction of its kept bytes written so far "
              "(ties: en, zh, code), so every stretch of the file holds about 1/3 of each")
WINDOW_RULE = ("windows.bin: per language (en, zh, code) N windows of %d bytes from <lang>/val.bin: "
               "window k lies in the k-th of N equal strata of the file, starting at the first "
               "offset >= stratum start + sha256('win:<lang>:<k>') mod (stratum - %d + 1) where both "
               "the start and the end are UTF-8 character boundaries (no padding; the search wraps "
               "inside the stratum); then M switch windows per ordered pair a>b: switch offset "
               "s = %d + sha256('switch:<a>><b>:<j>:s') mod %d, the first s bytes from a's val.bin and "
               "the last %d-s from b's, each piece cut the same way from a hash-chosen start "
               "anywhere in the file" % (WINDOW, WINDOW, SWITCH_MIN, SWITCH_MAX - SWITCH_MIN + 1, WINDOW))


def hkey(*parts):
    return int.from_bytes(hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()[:8], "big")


# ---------------------------------------------------------------------------------------
# Document mixing

def select_share(sizes, share, part, lang):
    """Indices of the documents kept for `lang`, in hash order (see SHARE_RULE)."""
    keep, total = [], 0
    for i in sorted(range(len(sizes)), key=lambda i: hkey("mixed", part, lang, i)):
        if total + sizes[i] <= share:
            keep.append(i)
            total += sizes[i]
    return keep


def interleave(totals, streams):
    """streams: lang -> list of document sizes in output order; totals: lang -> their sum.
    Yields (lang, j) in ORDER_RULE order."""
    pos = {l: 0 for l in streams}
    done = {l: 0 for l in streams}
    while True:
        best = None
        for l in LANGS:
            if l not in streams or pos[l] >= len(streams[l]):
                continue
            # done[l]/totals[l] < done[best]/totals[best], in integers
            if best is None or done[l] * totals[best] < done[best] * totals[l]:
                best = l
        if best is None:
            return
        yield best, pos[best]
        done[best] += streams[best][pos[best]]
        pos[best] += 1


def mix_part(src, part):
    """src: lang -> (bytes of <lang>/<part>.bin, its idx offsets).  Returns (data, rows) with
    rows = [(offset, bytes, lang, source_offset)] and the per-language (docs, bytes) kept."""
    sizes = {l: [b - a for a, b in zip(src[l][1], src[l][1][1:])] for l in LANGS}
    share = min(sum(sizes[l]) for l in LANGS)
    order = {l: select_share(sizes[l], share, part, l) for l in LANGS}
    streams = {l: [sizes[l][i] for i in order[l]] for l in LANGS}
    totals = {l: sum(streams[l]) for l in LANGS}
    chunks, rows, off = [], [], 0
    for l, j in interleave(totals, streams):
        i = order[l][j]
        a, b = src[l][1][i], src[l][1][i + 1]
        chunks.append(src[l][0][a:b])
        rows.append((off, b - a, l, a))
        off += b - a
    kept = {l: (len(order[l]), totals[l]) for l in LANGS}
    return b"".join(chunks), rows, kept


# ---------------------------------------------------------------------------------------
# Analysis windows

def is_boundary(buf, p):
    """True if byte offset p starts a UTF-8 character (or is the end of buf)."""
    return p == len(buf) or (buf[p] & 0xC0) != 0x80


def find_cut(buf, start, length, lo, hi):
    """First p >= start (wrapping to lo) with lo <= p, p + length <= hi and both p and
    p + length on character boundaries."""
    last = hi - length
    for rng in (range(start, last + 1), range(lo, min(start, last + 1))):
        for p in rng:
            if is_boundary(buf, p) and is_boundary(buf, p + length):
                return p
    raise SystemExit("no %d-byte window on UTF-8 boundaries in [%d, %d)" % (length, lo, hi))


def lang_windows(buf, lang, n):
    """Offsets of n non-overlapping WINDOW-byte windows of buf, one per stratum."""
    stratum = len(buf) // n
    if stratum < 2 * WINDOW:
        raise SystemExit("%s/val.bin has %d bytes: too small for %d windows of %d bytes"
                         % (lang, len(buf), n, WINDOW))
    res = []
    for k in range(n):
        lo = k * stratum
        start = lo + hkey("win", lang, k) % (stratum - WINDOW + 1)
        res.append(find_cut(buf, start, WINDOW, lo, lo + stratum))
    return res


def switch_window(bufs, a, b, j):
    """(switch offset s, offset in a, offset in b) of switch window j of the pair a>b."""
    s = SWITCH_MIN + hkey("switch", a + ">" + b, j, "s") % (SWITCH_MAX - SWITCH_MIN + 1)
    pa = find_cut(bufs[a], hkey("switch", a + ">" + b, j, "a") % (len(bufs[a]) - s + 1), s, 0, len(bufs[a]))
    pb = find_cut(bufs[b], hkey("switch", a + ">" + b, j, "b") % (len(bufs[b]) - (WINDOW - s) + 1),
                  WINDOW - s, 0, len(bufs[b]))
    return s, pa, pb


def make_windows(bufs, per_lang, per_pair):
    """bufs: lang -> bytes of <lang>/val.bin.  Returns (windows bytes, list of jsonl records)."""
    data, recs = [], []

    def add(rec, piece):
        piece.decode("utf-8")  # raises if a cut is not on a character boundary
        assert len(piece) == WINDOW
        rec = dict(index=len(recs), lang=rec.pop("lang"), offset=len(recs) * WINDOW, bytes=WINDOW, **rec)
        recs.append(rec)
        data.append(piece)

    for l in LANGS:
        for p in lang_windows(bufs[l], l, per_lang):
            add({"lang": l, "source": l + "/val.bin", "source_offset": p}, bufs[l][p:p + WINDOW])
    for a in LANGS:
        for b in LANGS:
            if a == b:
                continue
            for j in range(per_pair):
                s, pa, pb = switch_window(bufs, a, b, j)
                add({"lang": a + ">" + b, "switch": s, "source": [a + "/val.bin", b + "/val.bin"],
                     "source_offset": [pa, pb]}, bufs[a][pa:pa + s] + bufs[b][pb:pb + WINDOW - s])
    return b"".join(data), recs


# ---------------------------------------------------------------------------------------
# Build

def _load_source(out, lang):
    path = os.path.join(out, lang, "manifest.json")
    if not os.path.isfile(path):
        raise SystemExit("mixed: %s is missing; build it first (scripts/make_corpora.sh %s)" % (path, lang))
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def config(args):
    src = {}
    for l in LANGS:
        with open(os.path.join(args.out, l, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
        src[l] = {"config_sha256": man["config_sha256"], "train_sha256": man["train"]["sha256"],
                  "val_sha256": man["val"]["sha256"]}
    return {
        "corpus": "mixed",
        "builder_version": corpora.BUILDER_VERSION,
        "languages": list(LANGS),
        "sources": src,
        "share": SHARE_RULE,
        "order": ORDER_RULE,
        "window_bytes": WINDOW,
        "windows_per_lang": args.windows,
        "switch_per_pair": args.switch_windows,
        "switch_range": [SWITCH_MIN, SWITCH_MAX],
        "windows": WINDOW_RULE,
    }


def build(args):
    t0 = time.time()
    outdir = os.path.join(args.out, "mixed")
    os.makedirs(outdir, exist_ok=True)
    mans, data = {}, {}
    for l in LANGS:
        mans[l] = _load_source(args.out, l)
        for part in ("train", "val"):
            d = os.path.join(args.out, l)
            with open(os.path.join(d, part + ".bin"), "rb") as f:
                buf = f.read()
            idx = corpora.read_idx(os.path.join(d, part + ".idx"))
            if corpora.sha256_bytes(buf) != mans[l][part]["sha256"] or idx[-1] != len(buf) or idx[0] != 0:
                raise SystemExit("mixed: %s/%s.bin or .idx does not match its manifest; rebuild %s" % (d, part, l))
            data[(l, part)] = (buf, idx)
    manifest = {
        "corpus": "mixed",
        "description": "Equal byte shares of en, zh and code mixed at document granularity, plus "
                       "labelled 512-byte analysis windows from the val parts",
        "config": config(args),
        "encoding": "UTF-8, '\\n' line endings, no BOM",
        "separator": corpora.SEPARATOR + " (as in the source corpora)",
        "split": "train.bin from the languages' train.bin only, val.bin and windows.bin from their val.bin only",
        "index": corpora.IDX_RULE,
        "docs": "<part>.docs.tsv: header line, then one line per document: offset, bytes, lang, "
                "source_offset (in <lang>/<part>.bin), tab-separated",
    }
    manifest["config_sha256"] = corpora.sha256_bytes(json.dumps(manifest["config"], sort_keys=True).encode())
    kept = {}
    for part in ("train", "val"):
        buf, rows, kept[part] = mix_part({l: data[(l, part)] for l in LANGS}, part)
        with open(os.path.join(outdir, part + ".bin.tmp"), "wb") as f:
            f.write(buf)
        os.replace(os.path.join(outdir, part + ".bin.tmp"), os.path.join(outdir, part + ".bin"))
        corpora.write_idx(os.path.join(outdir, part + ".idx"), [r[0] for r in rows] + [len(buf)])
        with open(os.path.join(outdir, part + ".docs.tsv"), "w", encoding="utf-8") as f:
            f.write("offset\tbytes\tlang\tsource_offset\n")
            f.writelines("%d\t%d\t%s\t%d\n" % r for r in rows)
        manifest[part] = {"file": part + ".bin", "bytes": len(buf), "documents": len(rows),
                          "sha256": corpora.sha256_bytes(buf)}
        corpora.log("mixed/%s: %d docs, %.2f MB (%s)" % (part, len(rows), len(buf) / 1e6, ", ".join(
            "%s %d docs %d B" % (l, kept[part][l][0], kept[part][l][1]) for l in LANGS)))
    manifest["sources"] = [{
        "id": l,
        "corpus": l + "/",
        "description": mans[l]["description"],
        "config_sha256": mans[l]["config_sha256"],
        "packages": [pk for s in mans[l]["sources"] for pk in s["packages"] + s.get("tools", [])],
        "train": mans[l]["train"], "val": mans[l]["val"],
        "documents": kept["train"][l][0] + kept["val"][l][0],
        "val_documents": kept["val"][l][0],
        "text_bytes": kept["train"][l][1] + kept["val"][l][1],
        "kept": {part: {"documents": kept[part][l][0], "bytes": kept[part][l][1]} for part in ("train", "val")},
    } for l in LANGS]

    wins, recs = make_windows({l: data[(l, "val")][0] for l in LANGS}, args.windows, args.switch_windows)
    with open(os.path.join(outdir, "windows.bin"), "wb") as f:
        f.write(wins)
    with open(os.path.join(outdir, "windows.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    manifest["windows"] = {"file": "windows.bin", "labels": "windows.jsonl", "windows": len(recs),
                           "window_bytes": WINDOW, "per_lang": args.windows,
                           "switch_per_pair": args.switch_windows, "bytes": len(wins),
                           "sha256": corpora.sha256_bytes(wins)}
    names = ["train.bin", "val.bin", "train.idx", "val.idx", "train.docs.tsv", "val.docs.tsv",
             "windows.bin", "windows.jsonl"]
    manifest["outputs"] = {fn: corpora.output_entry(outdir, fn) for fn in names}
    manifest["builder"] = "scripts/make_corpora.sh + scripts/corpora.py + scripts/corpora_mixed.py " \
                          "(builder_version %d)" % corpora.BUILDER_VERSION
    corpora.write_json(os.path.join(outdir, "manifest.json"), manifest)
    corpora.log("mixed: %d windows (%d per language, %d per ordered pair); built in %.1fs"
                % (len(recs), args.windows, args.switch_windows, time.time() - t0))
