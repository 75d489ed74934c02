"""Offline tests of the corpus builder on tiny synthetic data (`corpora.py selftest`, ctest
`corpora`): ANSI stripping, fortune splitting, poem extraction from a synthetic dist/ tree,
deterministic subsampling, document mixing, UTF-8-boundary windows and switch windows, and a
two-fold build of a synthetic `mixed` corpus (byte-identical, `uptodate` agrees)."""

import argparse
import json
import os
import random
import tempfile
import traceback

import corpora
import corpora_mixed as mx
import corpora_zh as zh


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w", encoding=None if isinstance(data, bytes) else "utf-8") as f:
        f.write(data)


def test_strip_ansi():
    raw = "a\x1b[35;1m“~/.bashrc”\x1b[;\x1b[34;1mm来\x1b[m b\x1b[33m -- x\x1b[32m《y》\x1b[m\x1bz"
    assert zh.strip_ansi(raw) == "a“~/.bashrc”来 b -- x《y》z", repr(zh.strip_ansi(raw))
    assert zh.strip_ansi("没有转义") == "没有转义"


def test_fortunes_zh():
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "usr/share/games/fortunes")
        _write(os.path.join(base, "tang300"), "\x1b[32m《静夜思》\x1b[m\r\n床前明月光，  \n%\n\n%\n"
                                              "\x1b[33m作者：李白\x1b[m\n\n\n举头望明月\n")
        _write(os.path.join(base, "tang300.dat"), b"\0\1")
        os.symlink("tang300", os.path.join(base, "tang300.u8"))
        files = []
        docs = list(corpora.docs_fortunes({"fortunes-zh": d}, files, "fortunes-zh", zh.strip_ansi))
        assert files == ["usr/share/games/fortunes/tang300"], files
        assert docs == [("fortunes-zh:tang300:0", "《静夜思》\n床前明月光，"),
                        ("fortunes-zh:tang300:2", "作者：李白\n\n举头望明月")], docs


def _poetry_tree(d):
    _write(os.path.join(d, "dist/a/poems.json"), json.dumps([
        {"title": "静夜思", "author": "李白", "paragraphs": ["床前明月光，疑是地上霜。", " 举头望明月，低头思故乡。 "]},
        {"rhythmic": "浣溪沙", "author": "晏殊", "paragraphs": ["一曲新词酒一杯，", "", "去年天气旧亭台。"]},
        {"content": "读经宜冬，其神专也。", "comment": ["不是正文"]},
        {"title": "空", "paragraphs": ["", "  "]},
        {"title": "静夜思", "author": "李白", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]},
    ], ensure_ascii=False))
    _write(os.path.join(d, "dist/b/book.json"), json.dumps({
        "title": "蒙学", "abstract": ["摘要不是正文"],
        "content": [{"chapter": "上卷", "para": ["雲對雨，雪對風。"]},
                    {"title": "下卷", "content": [{"chapter": "一 東", "paragraphs": ["來鴻對去燕。"]}]}],
    }, ensure_ascii=False))
    _write(os.path.join(d, "dist/quantangshi/error/e.json"), json.dumps([{"title": "錯", "paragraphs": ["□□"]}]))
    _write(os.path.join(d, "dist/rank/poet/r.json"), json.dumps([{"title": "x", "baidu": 1}]))
    _write(os.path.join(d, "dist/notes.txt"), "not json")


def test_poem_extraction():
    with tempfile.TemporaryDirectory() as d:
        _poetry_tree(d)
        files, skipped = [], []
        docs = list(zh.poem_docs(d, corpora.clean_prose, files, skipped))
        assert files == ["dist/a/poems.json", "dist/b/book.json"], files
        want = [
            ("chinese-poetry:dist/a/poems.json:0", "静夜思\n李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"),
            ("chinese-poetry:dist/a/poems.json:1", "浣溪沙\n晏殊\n一曲新词酒一杯，\n去年天气旧亭台。"),
            ("chinese-poetry:dist/a/poems.json:2", "读经宜冬，其神专也。"),
            ("chinese-poetry:dist/b/book.json:0", "上卷\n雲對雨，雪對風。"),
            ("chinese-poetry:dist/b/book.json:1", "一 東\n來鴻對去燕。"),
        ]
        assert docs == want, docs
        assert skipped and "1 exact duplicate" in skipped[0]["reason"], skipped


def test_subsample():
    rng = random.Random(5)
    docs = [("d%d" % i, rng.randint(10, 300)) for i in range(500)]
    total = sum(n for _, n in docs)
    assert zh.subsample(docs, total) == set(range(500))
    assert zh.subsample(docs, 0) == set()
    keep = zh.subsample(docs, total // 3)
    assert keep == zh.subsample(list(docs), total // 3)  # deterministic
    got = sum(docs[i][1] for i in keep)
    assert total // 3 - 300 < got <= total // 3, (got, total // 3)
    # greedy in select_key order: a skipped document never fits into what is left
    order = sorted(range(500), key=lambda i: zh.select_key(docs[i][0]))
    acc = 0
    for i in order:
        if i in keep:
            acc += docs[i][1]
        else:
            assert acc + docs[i][1] > total // 3
    # the chosen set depends on ids, not on their position: shuffling the list keeps it
    perm = list(range(500))
    rng.shuffle(perm)
    keep2 = zh.subsample([docs[i] for i in perm], total // 3)
    assert {perm[j] for j in keep2} == keep


def test_poetry_budget():
    with tempfile.TemporaryDirectory() as d:
        _poetry_tree(d)
        files, skipped = [], []
        full = list(corpora.docs_poetry({"chinese-poetry": d}, files, skipped, 10 ** 6))
        assert len(full) == 5
        sizes = [len(t.encode()) for _, t in full]  # separators included
        files, skipped = [], []
        part = list(corpora.docs_poetry({"chinese-poetry": d}, files, skipped, sum(sizes) - 1))
        assert len(part) == 4 and all(p in full for p in part), part  # source order kept
        assert [full.index(p) for p in part] == sorted(full.index(p) for p in part)


def test_idx_roundtrip():
    with tempfile.TemporaryDirectory() as d:
        offs = [0, 5, 2 ** 33 + 7]
        corpora.write_idx(os.path.join(d, "x.idx"), offs)
        assert os.path.getsize(os.path.join(d, "x.idx")) == 24
        assert corpora.read_idx(os.path.join(d, "x.idx")) == offs


def _text(rng, lang, n):
    """Synthetic documents: en ASCII words, zh 3-byte characters with ASCII-free lines, code
    ASCII plus a few 2- and 4-byte characters."""
    docs = []
    for i in range(n):
        if lang == "en":
            t = " ".join(rng.choice(["the", "word", "of", "a", "river"]) for _ in range(rng.randint(5, 60)))
        elif lang == "zh":
            t = "\n".join("".join(chr(0x4E00 + rng.randrange(2000)) for _ in range(rng.randint(5, 9))) + "。"
                          for _ in range(rng.randint(1, 8)))
        else:
            t = "// path: f%d.h\nint x%d = %d; // é 𝄞 ü\n" % (i, i, rng.randrange(100)) * rng.randint(1, 20)
        docs.append((t.rstrip() + "\n\n").encode("utf-8"))
    return docs


def _part(docs):
    offs = [0]
    for b in docs:
        offs.append(offs[-1] + len(b))
    return b"".join(docs), offs


def test_windows():
    buf = "ab€𝄞中".encode("utf-8")  # a b (1) € (3) 𝄞 (4) 中 (3)
    assert [p for p in range(len(buf) + 1) if mx.is_boundary(buf, p)] == [0, 1, 2, 5, 9, 12]
    assert mx.find_cut(buf, 3, 4, 0, len(buf)) == 5   # 𝄞
    assert mx.find_cut(buf, 6, 3, 0, len(buf)) == 9   # 中
    assert mx.find_cut(buf, 10, 4, 0, len(buf)) == 1  # wraps: b€
    try:
        mx.find_cut("中文字".encode("utf-8") * 400, 0, 512, 0, 3600)  # 512 is not a multiple of 3
        raise AssertionError("impossible cut accepted")
    except SystemExit:
        pass
    rng = random.Random(1)
    bufs = {l: _part(_text(rng, l, 400))[0] for l in mx.LANGS}
    data, recs = mx.make_windows(bufs, 8, 3)
    assert len(recs) == 3 * 8 + 6 * 3 and len(data) == len(recs) * mx.WINDOW
    assert (data, recs) == mx.make_windows(bufs, 8, 3)  # deterministic
    for l in mx.LANGS:
        offs = [r["source_offset"] for r in recs if r["lang"] == l]
        assert len(offs) == 8 and offs == sorted(offs)
        assert all(b - a >= mx.WINDOW for a, b in zip(offs, offs[1:])), "windows overlap"
    pairs = {}
    for r in recs:
        w = data[r["offset"]:r["offset"] + mx.WINDOW]
        assert r["index"] * mx.WINDOW == r["offset"] and r["bytes"] == mx.WINDOW
        w.decode("utf-8")
        if ">" not in r["lang"]:
            assert w == bufs[r["lang"]][r["source_offset"]:r["source_offset"] + mx.WINDOW]
            continue
        a, b = r["lang"].split(">")
        s, (pa, pb) = r["switch"], r["source_offset"]
        assert mx.SWITCH_MIN <= s <= mx.SWITCH_MAX
        assert r["source"] == [a + "/val.bin", b + "/val.bin"]
        assert w[:s] == bufs[a][pa:pa + s] and w[s:] == bufs[b][pb:pb + mx.WINDOW - s]
        w[:s].decode("utf-8"), w[s:].decode("utf-8")
        pairs[r["lang"]] = pairs.get(r["lang"], 0) + 1
    assert pairs == {a + ">" + b: 3 for a in mx.LANGS for b in mx.LANGS if a != b}, pairs


def test_mix_part():
    rng = random.Random(2)
    src = {l: _part(_text(rng, l, {"en": 300, "zh": 900, "code": 60}[l])) for l in mx.LANGS}
    data, rows, kept = mx.mix_part(src, "train")
    share = min(src[l][1][-1] for l in mx.LANGS)
    assert (data, rows, kept) == mx.mix_part(src, "train")
    seen = {l: set() for l in mx.LANGS}
    for off, n, l, so in rows:
        assert data[off:off + n] == src[l][0][so:so + n]
        assert so in src[l][1] and so not in seen[l]
        seen[l].add(so)
    assert rows[-1][0] + rows[-1][1] == len(data)
    for l in mx.LANGS:
        got = sum(n for _, n, ll, _ in rows if ll == l)
        assert got == kept[l][1] and share - 2000 < got <= share, (l, got, share)
    # interleaving: in every prefix each language is within one document of its fair share
    done = {l: 0 for l in mx.LANGS}
    for off, n, l, _ in rows:
        frac = {k: done[k] / kept[k][1] for k in mx.LANGS}
        assert frac[l] <= min(frac.values()) + 1e-12
        done[l] += n


def test_mixed_build():
    """Build `mixed` twice from synthetic en/zh/code corpora: byte-identical outputs, and
    `uptodate` accepts the result, then refuses it once an output or a source changes."""
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as out:
        for l in mx.LANGS:
            d = os.path.join(out, l)
            man = {"corpus": l, "description": l, "config_sha256": "c-" + l, "sources": [{"packages": []}]}
            for part, n in (("train", 600), ("val", 200)):
                buf, offs = _part(_text(rng, l, n if l != "code" else n // 10))
                _write(os.path.join(d, part + ".bin"), buf)
                corpora.write_idx(os.path.join(d, part + ".idx"), offs)
                man[part] = {"file": part + ".bin", "bytes": len(buf), "documents": len(offs) - 1,
                             "sha256": corpora.sha256_bytes(buf)}
            corpora.write_json(os.path.join(d, "manifest.json"), man)
        args = argparse.Namespace(out=out, corpus="mixed", windows=4, switch_windows=2, quick=False,
                                  allow_unpinned=False)
        assert corpora.cmd_uptodate(args) == 1
        mx.build(args)
        outd = os.path.join(out, "mixed")
        first = {fn: open(os.path.join(outd, fn), "rb").read() for fn in sorted(os.listdir(outd))}
        assert corpora.cmd_uptodate(args) == 0
        mx.build(args)
        assert first == {fn: open(os.path.join(outd, fn), "rb").read() for fn in sorted(os.listdir(outd))}
        man = json.loads(first["manifest.json"])
        assert man["windows"]["windows"] == 4 * 3 + 2 * 6
        assert len(first["windows.jsonl"].decode().splitlines()) == 24
        assert man["train"]["documents"] + 1 == len(first["train.idx"]) // 8
        args.windows = 5
        assert corpora.cmd_uptodate(args) == 1  # option changed
        args.windows = 4
        _write(os.path.join(outd, "windows.bin"), first["windows.bin"][:-1] + b"x")
        assert corpora.cmd_uptodate(args) == 1  # output damaged


TESTS = [test_strip_ansi, test_fortunes_zh, test_poem_extraction, test_subsample, test_poetry_budget,
         test_idx_roundtrip, test_windows, test_mix_part, test_mixed_build]


def run():
    failed = 0
    for t in TESTS:
        try:
            t()
        except BaseException:  # SystemExit from the builder counts as a failure too
            failed += 1
            print("FAILED", t.__name__)
            traceback.print_exc()
    print("corpora selftest: %d passed, %d failed" % (len(TESTS) - failed, failed))
    return 1 if failed else 0
