#!/usr/bin/python3
"""Corpus builder used by scripts/make_corpora.sh (Python 3 standard library only).

Builds byte-level training corpora from pinned Debian 12 (and npm) packages, see
docs/data.md and shared/spec/data.md.  Sub-commands (called by the shell script):

  pins CORPUS...                      print "package=version" for every .deb a corpus needs
  npm-pins CORPUS...                  print "name@version" for every npm tarball it needs
  uptodate --out DIR CORPUS           exit 0 if DIR/CORPUS/manifest.json matches this builder
  build --out DIR --deb PKG=PATH ... [--npm NAME=TGZ ...] CORPUS
                                      extract the packages, build train.bin/val.bin (+ .idx)
                                      and manifest.json; `build mixed` needs en, zh, code built
  summary --out DIR CORPUS...         print sizes and checksums
  selftest                            offline tests on synthetic data (ctest `corpora`)

Every document is written as  text.rstrip() + "\\n\\n"  (UTF-8, "\\n" line ends), so documents
are separated by exactly one blank line.  A document goes to val.bin iff
int(sha256(doc_id)[:8], 16) % 100 < 2, otherwise to train.bin.  train.idx / val.idx hold the
start offset of every document as little-endian uint64, followed by the file size.
"""

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":  # let corpora_mixed.py `import corpora` get this module, not a copy
    sys.modules.setdefault("corpora", sys.modules["__main__"])
sys.dont_write_bytecode = True  # no scripts/__pycache__ in the source tree

import corpora_zh  # noqa: E402  (after the alias above)
from corpora_en import GCIDE_GROUP, clean_prose, docs_gcide, docs_kjv  # noqa: E402

# Bump whenever the extraction/cleaning changes the output bytes.
# 2: adds train.idx/val.idx and the `outputs` table (en/code text bytes unchanged); zh, mixed.
BUILDER_VERSION = 2

# Pinned Debian 12 (bookworm) package versions.  Versions from bookworm/main (not
# bookworm-security) are used because they stay downloadable until the next point release.
PINS = {
    "dict-gcide": "0.48.5+nmu2",
    "bible-kjv": "4.38",
    "bible-kjv-text": "4.38",
    "fortunes": "1:1.99.1-7.3",
    "libstdc++-12-dev": "12.2.0-14+deb12u1",
    "linux-libc-dev": "6.1.176-1",
    "libpython3.11-minimal": "3.11.2-6+deb12u8",
    "libpython3.11-stdlib": "3.11.2-6+deb12u8",
    # tool only: the `bible` binary links against libreadline.so.8, which is not part of
    # a minimal Debian install; we run it with the extracted copy on LD_LIBRARY_PATH.
    "libreadline8": "8.2-1.3",
    "fortunes-zh": "2.98",
}

# Pinned npm tarballs: version and the registry's sha512 integrity of the .tgz.
NPM_PINS = {
    "chinese-poetry": {"version": "2.0.1", "integrity": "sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7P"
                       "WyDzXI4KsCEm2odZcqEQyval5koaLygZnM/EQ3lfJ//25K8p3uHNg=="},
}
ZH_BYTES = 30000000  # default size of the zh corpus (fortunes-zh + subsampled poems)

VAL_PERCENT = 2
SPLIT_RULE = ("document goes to val.bin iff int(sha256(doc_id.encode('utf-8')).hexdigest()[:8], 16)"
              " %% 100 < %d, else train.bin" % VAL_PERCENT)
SEPARATOR = "each document is text.rstrip() followed by '\\n\\n' (one blank line between documents)"
IDX_RULE = ("train.idx / val.idx: little-endian uint64 start offset of every document in "
            "train.bin / val.bin, followed by the file size (documents + 1 entries)")
CODE_MAX_BYTES = 1 << 20  # files larger than 1 MiB are dropped

CORPORA = {
    "en": {
        "description": "English prose: GCIDE dictionary (Webster 1913 + WordNet 1.5), KJV Bible, fortunes",
        "sources": [
            {"id": "gcide", "packages": ["dict-gcide"], "tools": []},
            {"id": "kjv", "packages": ["bible-kjv", "bible-kjv-text"], "tools": ["libreadline8"]},
            {"id": "fortunes", "packages": ["fortunes"], "tools": []},
        ],
    },
    "code": {
        "description": "Source code: libstdc++ 12 headers, Linux UAPI headers, Python 3.11 standard library",
        "sources": [
            {"id": "libstdc++-12-dev", "packages": ["libstdc++-12-dev"], "tools": []},
            {"id": "linux-libc-dev", "packages": ["linux-libc-dev"], "tools": []},
            {"id": "libpython3.11-minimal", "packages": ["libpython3.11-minimal"], "tools": []},
            {"id": "libpython3.11-stdlib", "packages": ["libpython3.11-stdlib"], "tools": []},
        ],
    },
    "zh": {
        "description": "Chinese: fortunes-zh (modern, simplified) + chinese-poetry (classical "
                       "poems, mostly traditional), subsampled to a byte budget",
        "sources": [
            {"id": "fortunes-zh", "packages": ["fortunes-zh"], "tools": []},
            {"id": "chinese-poetry", "packages": [], "npm": ["chinese-poetry"], "tools": []},
        ],
    },
}
MIXED = "mixed"  # built from en, zh and code by corpora_mixed.py, not from packages
ALL_CORPORA = sorted(CORPORA) + [MIXED]

DOC_ID_RULES = {
    "gcide": "gcide:<n> where n = ordinal of the first entry of a group of %d consecutive "
             "dictionary entries (0, %d, %d, ...), entries in gcide.dict order, 00-database-* "
             "metadata entries skipped" % (GCIDE_GROUP, GCIDE_GROUP, 2 * GCIDE_GROUP),
    "kjv": "kjv:<book abbreviation><chapter> as printed by `bible`, e.g. kjv:Ge1, kjv:1Cor13",
    "fortunes": "fortunes:<file>:<n> where n = 0-based index of the %-separated entry in the file",
    "fortunes-zh": "fortunes-zh:<file>:<n> where n = 0-based index of the %-separated entry in the file",
    "chinese-poetry": "chinese-poetry:<file under package/>:<n> where n = 0-based index of the poem "
                      "in the file (JSON traversal order)",
    "code": "<package>:<path inside the package>, e.g. linux-libc-dev:usr/include/linux/fs.h",
}


def log(msg):
    print("[corpora] " + msg, file=sys.stderr, flush=True)


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_val(doc_id):
    return int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 100 < VAL_PERCENT


def corpus_packages(name):
    pk = []
    for src in CORPORA[name]["sources"]:
        for p in src["packages"] + src["tools"]:
            if p not in pk:
                pk.append(p)
    return pk


def corpus_npm(name):
    return [n for src in CORPORA[name]["sources"] for n in src.get("npm", [])]


def corpus_config(name, args):
    """What the output depends on; stored in the manifest and compared by `uptodate`."""
    if name == MIXED:
        import corpora_mixed
        return corpora_mixed.config(args)
    cfg = {
        "corpus": name,
        "builder_version": BUILDER_VERSION,
        "packages": {p: PINS[p] for p in corpus_packages(name)},
        "split": SPLIT_RULE,
        "separator": SEPARATOR,
    }
    if corpus_npm(name):
        cfg["npm"] = {n: NPM_PINS[n] for n in corpus_npm(name)}
    if name == "zh":
        cfg["target_bytes"] = args.zh_bytes
    return cfg


def output_entry(outdir, fn):
    path = os.path.join(outdir, fn)
    return {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def write_idx(path, offsets):
    """offsets: document starts followed by the file size -> little-endian uint64 file."""
    with open(path, "wb") as f:
        f.write(struct.pack("<%dQ" % len(offsets), *offsets))


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    return list(struct.unpack("<%dQ" % (len(raw) // 8), raw))


def write_json(path, obj):
    """Atomic write of a JSON manifest."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(path + ".tmp", path)


# ---------------------------------------------------------------------------------------
# fortunes

def docs_fortunes(root, files, pkg="fortunes", pre=lambda t: t):
    """Every fortune file of `pkg` (not *.dat, not the *.u8 links); `pre` cleans the raw text
    before it is split into entries (fortunes-zh: ANSI colour escapes)."""
    base = os.path.join(root[pkg], "usr/share/games/fortunes")
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        if name.endswith(".dat") or name.endswith(".u8") or os.path.islink(path) or not os.path.isfile(path):
            continue
        files.append("usr/share/games/fortunes/" + name)
        with open(path, "rb") as f:
            text = pre(f.read().decode("utf-8"))
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        entries, cur = [], []
        for line in text.split("\n"):
            if line == "%":
                entries.append(cur)
                cur = []
            else:
                cur.append(line)
        entries.append(cur)
        for i, e in enumerate(entries):
            t = clean_prose("\n".join(e))
            if t.strip():
                yield "%s:%s:%d" % (pkg, name, i), t


# ---------------------------------------------------------------------------------------
# Source code

def _code_files(pkgroot, pkg):
    if pkg.startswith("libpython3.11"):
        top, want = "usr/lib/python3.11", lambda p: p.endswith(".py")
    else:
        top, want = "usr/include", lambda p: True
    res = []
    for d, dirs, fs in os.walk(os.path.join(pkgroot, top)):
        dirs.sort()
        for fn in fs:
            full = os.path.join(d, fn)
            rel = os.path.relpath(full, pkgroot).replace(os.sep, "/")
            if os.path.islink(full) or not os.path.isfile(full) or not want(rel):
                continue
            res.append(rel)
    return sorted(res)


def make_docs_code(pkg):
    def gen(root, files, skipped, left):
        pkgroot = root[pkg]
        for rel in _code_files(pkgroot, pkg):
            full = os.path.join(pkgroot, rel)
            size = os.path.getsize(full)
            if size > CODE_MAX_BYTES:
                skipped.append({"path": rel, "reason": "larger than 1 MiB (%d bytes)" % size})
                continue
            with open(full, "rb") as f:
                raw = f.read()
            if b"\0" in raw:
                skipped.append({"path": rel, "reason": "contains NUL bytes"})
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped.append({"path": rel, "reason": "not valid UTF-8"})
                continue
            text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip()
            if not text:
                skipped.append({"path": rel, "reason": "empty"})
                continue
            files.append(rel)
            prefix = "# path: " if rel.endswith(".py") else "// path: "
            yield "%s:%s" % (pkg, rel), prefix + rel + "\n" + text
    return gen


# ---------------------------------------------------------------------------------------
# Chinese poetry (npm): all poems are read, then a hash-chosen subset fills the budget left
# by the sources before it (zh: target_bytes - fortunes-zh bytes), written in source order.

def docs_poetry(root, files, skipped, budget):
    docs = [(i, (t.rstrip() + "\n\n").encode("utf-8"))
            for i, t in corpora_zh.poem_docs(root["chinese-poetry"], clean_prose, files, skipped)]
    keep = corpora_zh.subsample([(i, len(b)) for i, b in docs], budget)
    nbytes = sum(len(b) for _, b in docs)
    log("chinese-poetry: %d poems, %.2f MB; keeping %d poems (%.2f MB budget)"
        % (len(docs), nbytes / 1e6, len(keep), budget / 1e6))
    skipped.append({"path": "dist/**", "reason": "subsampled: %d of %d poems (%d of %d bytes) not selected"
                    % (len(docs) - len(keep), len(docs), nbytes - sum(len(docs[k][1]) for k in keep), nbytes)})
    for k, (doc_id, b) in enumerate(docs):
        if k in keep:
            yield doc_id, b.decode("utf-8")


# gen(root, files, skipped, left): left = bytes still allowed by the corpus target (zh only)
GENERATORS = {
    "gcide": lambda root, files, skipped, left: docs_gcide(root, files),
    "kjv": lambda root, files, skipped, left: docs_kjv(root, files),
    "fortunes": lambda root, files, skipped, left: docs_fortunes(root, files),
    "fortunes-zh": lambda root, files, skipped, left: docs_fortunes(root, files, "fortunes-zh",
                                                                    corpora_zh.strip_ansi),
    "chinese-poetry": docs_poetry,
    "libstdc++-12-dev": make_docs_code("libstdc++-12-dev"),
    "linux-libc-dev": make_docs_code("linux-libc-dev"),
    "libpython3.11-minimal": make_docs_code("libpython3.11-minimal"),
    "libpython3.11-stdlib": make_docs_code("libpython3.11-stdlib"),
}


# ---------------------------------------------------------------------------------------
# Commands

def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def unpack_npm(tgz, name, dest):
    """Check the tarball against NPM_PINS (sha512 integrity, package.json version), extract
    it with tar into dest/ and return (package dir, manifest info)."""
    import base64
    pin = NPM_PINS[name]
    h = hashlib.sha512()
    with open(tgz, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    integrity = "sha512-" + base64.b64encode(h.digest()).decode()
    if integrity != pin["integrity"]:
        raise SystemExit("%s: integrity %s differs from the pinned %s@%s (%s)"
                         % (tgz, integrity, name, pin["version"], pin["integrity"]))
    os.makedirs(dest)
    subprocess.run(["tar", "xzf", tgz, "-C", dest], check=True)
    pkgdir = os.path.join(dest, "package")
    with open(os.path.join(pkgdir, "package.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("name") != name or meta.get("version") != pin["version"]:
        raise SystemExit("%s is %s@%s, pinned %s@%s" % (tgz, meta.get("name"), meta.get("version"),
                                                       name, pin["version"]))
    return pkgdir, {"package": name, "version": pin["version"], "registry": "npm",
                    "tarball": os.path.basename(tgz), "integrity": integrity,
                    "tarball_sha256": sha256_file(tgz)}


def unpack_all(args, name, work):
    """Extract every .deb / npm tarball the corpus needs into work/; returns (pkginfo, root)."""
    debs = dict(kv.split("=", 1) for kv in args.deb)
    tgzs = dict(kv.split("=", 1) for kv in args.npm)
    need, need_npm = corpus_packages(name), corpus_npm(name)
    missing = [p for p in need if p not in debs] + ["npm " + n for n in need_npm if n not in tgzs]
    if missing:
        raise SystemExit("missing --deb/--npm for: " + ", ".join(missing))
    pkginfo, root = {}, {}
    for p in need:
        deb = os.path.abspath(debs[p])
        ver, arch = deb_field(deb, "Version"), deb_field(deb, "Architecture")
        if deb_field(deb, "Package") != p:
            raise SystemExit("%s is not a .deb of %s" % (deb, p))
        unpinned = ver != PINS[p]
        if unpinned and not args.allow_unpinned:
            raise SystemExit("%s has version %s, pinned %s" % (deb, ver, PINS[p]))
        root[p] = os.path.join(work, p)
        subprocess.run(["dpkg-deb", "-x", deb, root[p]], check=True)
        pkginfo[p] = {"package": p, "version": ver, "architecture": arch,
                      "deb": os.path.basename(deb), "deb_sha256": sha256_file(deb)}
        if unpinned:
            pkginfo[p]["pinned_version"] = PINS[p]
    for n in need_npm:
        root[n], pkginfo[n] = unpack_npm(os.path.abspath(tgzs[n]), n, os.path.join(work, "npm-" + n))
    return pkginfo, root


def cmd_build(args):
    name = args.corpus
    if name == MIXED:
        import corpora_mixed
        corpora_mixed.build(args)
        return
    outdir = os.path.join(args.out, name)
    os.makedirs(outdir, exist_ok=True)
    t0 = time.time()
    work = tempfile.mkdtemp(prefix=".work-%s-" % name, dir=args.out)
    try:
        pkginfo, root = unpack_all(args, name, work)
        log("%s: extracted %d packages (%.1fs)" % (name, len(pkginfo), time.time() - t0))
        target = args.zh_bytes if name == "zh" else None
        h = {"train": hashlib.sha256(), "val": hashlib.sha256()}
        offsets = {"train": [0], "val": [0]}  # document starts, then the file size
        sources = []
        with open(os.path.join(outdir, "train.bin.tmp"), "wb") as ftr, \
                open(os.path.join(outdir, "val.bin.tmp"), "wb") as fva:
            out = {"train": ftr, "val": fva}
            for src in CORPORA[name]["sources"]:
                ts = time.time()
                files, skipped, seen = [], [], set()
                hs = hashlib.sha256()
                nbytes = ndocs = nval = 0
                left = target - offsets["train"][-1] - offsets["val"][-1] if target else None
                for doc_id, text in GENERATORS[src["id"]](root, files, skipped, left):
                    if doc_id in seen:
                        raise SystemExit("duplicate document id " + doc_id)
                    seen.add(doc_id)
                    b = (text.rstrip() + "\n\n").encode("utf-8")
                    if len(b) <= 2:
                        continue
                    hs.update(b)
                    nbytes += len(b)
                    ndocs += 1
                    part = "val" if is_val(doc_id) else "train"
                    nval += part == "val"
                    out[part].write(b)
                    h[part].update(b)
                    offsets[part].append(offsets[part][-1] + len(b))
                entry = {
                    "id": src["id"],
                    "packages": [pkginfo[p] for p in src["packages"] + src.get("npm", [])],
                    "files": files,
                    "documents": ndocs,
                    "val_documents": nval,
                    "text_bytes": nbytes,
                    "text_sha256": hs.hexdigest(),
                    "doc_id": DOC_ID_RULES.get(src["id"], DOC_ID_RULES["code"]),
                }
                if src["tools"]:
                    entry["tools"] = [pkginfo[p] for p in src["tools"]]
                if skipped:
                    entry["skipped_files"] = skipped
                sources.append(entry)
                log("%s/%s: %d docs, %.2f MB (%.1fs)" % (name, src["id"], ndocs, nbytes / 1e6, time.time() - ts))
        for part in ("train", "val"):
            os.replace(os.path.join(outdir, part + ".bin.tmp"), os.path.join(outdir, part + ".bin"))
            write_idx(os.path.join(outdir, part + ".idx"), offsets[part])
        config = corpus_config(name, args)
        if args.allow_unpinned:
            config["packages"] = {p: pkginfo[p]["version"] for p in corpus_packages(name)}
        manifest = {
            "corpus": name,
            "description": CORPORA[name]["description"],
            "config": config,
            "config_sha256": sha256_bytes(json.dumps(config, sort_keys=True).encode()),
            "encoding": "UTF-8, '\\n' line endings, no BOM",
            "separator": SEPARATOR,
            "split": {"rule": SPLIT_RULE, "val_percent": VAL_PERCENT},
            "index": IDX_RULE,
            "sources": sources,
        }
        for part in ("train", "val"):
            manifest[part] = {"file": part + ".bin", "bytes": offsets[part][-1],
                              "documents": len(offsets[part]) - 1, "sha256": h[part].hexdigest()}
        manifest["outputs"] = {fn: output_entry(outdir, fn) for fn in ("train.bin", "val.bin", "train.idx", "val.idx")}
        manifest["builder"] = "scripts/make_corpora.sh + scripts/corpora.py (builder_version %d)" % BUILDER_VERSION
        if name == "zh":
            check_utf8(outdir)
        write_json(os.path.join(outdir, "manifest.json"), manifest)
        log("%s: built in %.1fs" % (name, time.time() - t0))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_utf8(outdir):
    for part in ("train.bin", "val.bin"):
        with open(os.path.join(outdir, part), "rb") as f:
            try:
                f.read().decode("utf-8", errors="strict")
            except UnicodeDecodeError as e:
                raise SystemExit("%s/%s is not valid UTF-8: %s" % (outdir, part, e))


def cmd_uptodate(args):
    outdir = os.path.join(args.out, args.corpus)
    try:
        with open(os.path.join(outdir, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
        want = corpus_config(args.corpus, args)
    except (OSError, ValueError, KeyError):
        return 1
    have = dict(man.get("config") or {})
    if args.allow_unpinned and set(have.get("packages", {})) == set(want.get("packages", {})):
        have["packages"] = want["packages"]  # accept the versions recorded by an unpinned build
    if have != want:
        log("%s: manifest is from a different builder version, options or sources" % args.corpus)
        return 1
    if not man.get("outputs"):
        return 1
    for fn, ent in sorted(man["outputs"].items()):
        path = os.path.join(outdir, fn)
        if not os.path.isfile(path) or os.path.getsize(path) != ent["bytes"]:
            log("%s: %s missing or wrong size" % (args.corpus, path))
            return 1
        if not args.quick and sha256_file(path) != ent["sha256"]:
            log("%s: %s sha256 differs from manifest" % (args.corpus, path))
            return 1
    return 0


def cmd_summary(args):
    for name in args.corpus:
        with open(os.path.join(args.out, name, "manifest.json"), encoding="utf-8") as f:
            man = json.load(f)
        tr, va = man["train"], man["val"]
        print("%-5s train %11d bytes %7d docs  sha256 %s" % (name, tr["bytes"], tr["documents"], tr["sha256"]))
        print("%-5s val   %11d bytes %7d docs  sha256 %s" % ("", va["bytes"], va["documents"], va["sha256"]))
        for s in man["sources"]:
            print("      %-22s %10d bytes %7d docs (%d val)" % (s["id"], s["text_bytes"], s["documents"], s["val_documents"]))
        if "windows" in man:
            w = man["windows"]
            print("      windows.bin %d windows x %d bytes  sha256 %s" % (w["windows"], w["window_bytes"], w["sha256"]))


def add_options(p):
    p.add_argument("--out", required=True)
    p.add_argument("--allow-unpinned", action="store_true")
    p.add_argument("--zh-bytes", type=int, default=ZH_BYTES, help="zh corpus size target (bytes)")
    p.add_argument("--windows", type=int, default=64, help="mixed: analysis windows per language")
    p.add_argument("--switch-windows", type=int, default=16, help="mixed: switch windows per ordered pair")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for cmd in ("pins", "npm-pins"):
        sub.add_parser(cmd).add_argument("corpus", nargs="+", choices=ALL_CORPORA)
    p = sub.add_parser("uptodate")
    add_options(p)
    p.add_argument("--quick", action="store_true", help="check sizes only, not sha256")
    p.add_argument("corpus", choices=ALL_CORPORA)
    p = sub.add_parser("build")
    add_options(p)
    p.add_argument("--deb", action="append", default=[], metavar="PKG=PATH")
    p.add_argument("--npm", action="append", default=[], metavar="NAME=TGZ")
    p.add_argument("corpus", choices=ALL_CORPORA)
    p = sub.add_parser("summary")
    p.add_argument("--out", required=True)
    p.add_argument("corpus", nargs="+", choices=ALL_CORPORA)
    sub.add_parser("selftest")
    args = ap.parse_args()
    if args.cmd in ("pins", "npm-pins"):
        seen = []
        for c in args.corpus:
            if c == MIXED:
                continue
            for pk in (corpus_packages(c) if args.cmd == "pins" else corpus_npm(c)):
                if pk not in seen:
                    seen.append(pk)
                    print("%s=%s" % (pk, PINS[pk]) if args.cmd == "pins" else "%s@%s" % (pk, NPM_PINS[pk]["version"]))
        return 0
    if args.cmd == "uptodate":
        return cmd_uptodate(args)
    if args.cmd == "build":
        cmd_build(args)
        return 0
    if args.cmd == "summary":
        cmd_summary(args)
        return 0
    if args.cmd == "selftest":
        import corpora_selftest
        return corpora_selftest.run()


if __name__ == "__main__":
    sys.exit(main())
