"""English sources for scripts/corpora.py (standard library only): the GCIDE dictionary
(dictd format) and the KJV Bible (run through the package's `bible` program), plus the
text cleaning shared by all prose sources (clean_prose)."""

import os
import re
import subprocess
import unicodedata

GCIDE_GROUP = 50  # dictionary entries per document


# ---------------------------------------------------------------------------------------
# Text helpers

_CTRL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def overstrike(line):
    """Resolve backspace overstrikes (e.g. '_\\bI', '____\\b\\b\\b\\bonly') like a terminal."""
    if "\b" not in line:
        return line
    buf, pos = [], 0
    for ch in line:
        if ch == "\b":
            pos = max(0, pos - 1)
            continue
        if pos < len(buf):
            if buf[pos] == "_" or ch != "_":
                buf[pos] = ch
        else:
            buf.append(ch)
        pos += 1
    return "".join(buf)


def clean_prose(text):
    """Line ends -> \\n, resolve overstrikes, drop other control chars, rstrip every line,
    drop leading blank lines and trailing whitespace."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_CTRL_RE.sub("", overstrike(l)).rstrip() for l in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\A\n+", "", text)
    text = re.sub(r"\n\n\n+", "\n\n", text)  # at most one blank line inside a document
    return unicodedata.normalize("NFC", text.rstrip())


# ---------------------------------------------------------------------------------------
# GCIDE (dictd format: gcide.index + gzip-compatible gcide.dict.dz)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VAL = {c: i for i, c in enumerate(_B64)}


def _b64num(s):
    v = 0
    for c in s:
        v = v * 64 + _B64_VAL[c]
    return v


# Named escapes of the dictd rendering of GCIDE ("[ae]" for <ae/> etc.).
_GCIDE_NAMED = {
    "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "yogh": "ȝ",
    "imac": "ī", "aum": "ä", "asl": "a", "add": "a\u0324", "udd": "u\u0324",
    "th": "th", "ng": "ŋ", "schwa": "ə", "root": "√", "cuberoot": "∛", "deg": "°",
    "sect": "§", "para": "¶", "pounds": "£", "middot": "·", "times": "×", "div": "÷",
    "divby": "÷", "dagger": "†", "dag": "†", "rarr": "→", "nbsp": " ", "ldqo": "“",
    "rdqo": "”", "rsquo": "’", "min": "′", "sec": "″", "bprime": "″", "flat": "♭",
    "sharp": "♯", "natural": "♮", "hand": "☞", "asterism": "⁂", "bar": "|",
    "filig": "fi", "fllig": "fl", "ffllig": "ffl", "nabla": "∇", "ounceap": "℥",
    "dsdot": "ḍ", "lsdot": "ḷ", "tsdo": "ṭ", "zdot": "ż", "mdot": "ṁ", "mtil": "m̃",
    "ccaron": "č", "cacute": "ć", "libra": "♎", "pisces": "♓", "scorpio": "♏",
    "taurus": "♉", "mercury": "☿", "break": "",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "omicron": "ο", "pi": "π", "rho": "ρ", "sigma": "σ",
    "sigmat": "ς", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "digamma": "ϝ", "Alpha": "Α", "Beta": "Β", "Gamma": "Γ", "Delta": "Δ",
    "Theta": "Θ", "Lambda": "Λ", "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ",
    "Omega": "Ω", "=oo": "o\u035eo", "oo^": "o\u035do", "=ae": "ǣ",
}
_DIACRITIC_PREFIX = {
    "=": "\u0304",  # macron
    "^": "\u0302",  # circumflex
    "'": "\u0301",  # acute
    "`": "\u0300",  # grave
    '"': "\u0308",  # diaeresis
    "~": "\u0303",  # tilde
    ",": "\u0327",  # cedilla
    "*": "\u030a",  # ring above (Sw. [*a] = å)
    "-": "",        # Webster's "obscure" vowel mark: keep the plain letter
}
_ESC_RE = re.compile(r"\[([^\[\]\s]{1,8})\]")


def _gcide_escape(m):
    k = m.group(1)
    if k in _GCIDE_NAMED:
        return _GCIDE_NAMED[k]
    if len(k) == 2 and k[0] in _DIACRITIC_PREFIX and k[1].isalpha() and k[1].isascii():
        return k[1] + _DIACRITIC_PREFIX[k[0]]
    if len(k) == 2 and k[0] == "." and k[1].isalpha() and k[1].isascii():
        return k[1] + ("\u0307" if k[1] in "aeiouyAEIOUY" else "\u0323")  # dot above/below
    if len(k) == 2 and k[1] == "^" and k[0].isalpha() and k[0].isascii():
        return k[0] + "\u0306"  # breve
    m2 = re.fullmatch(r"frac(\d)(\d)", k)
    if m2:
        return m2.group(1) + "/" + m2.group(2)
    return m.group(0)  # real bracketed text: [Obs.], [R.], [was], ...


_SOURCE_NAMES = (r"1913 Webster|Webster 1913 Suppl\.?|Webster 1913|WordNet(?: sense [\d ,&+]+| \d\.\d)?|"
                 r"PJC\.?|Century Dict\.?,?(?: 1906\.?)?|RDH|RHUD|RP|AS|GG|CM|JG|MW10|XXX")
_SOURCE_RE = re.compile(r"\[\s*(?:(?:%s)\s*\+?\s*)+\]" % _SOURCE_NAMES)
_HW_RE = re.compile(r"\\[^\\\n\x00]*\\([ \t]*\([^()\n\x00]*\))?")
_LABEL_RE = re.compile(r"\(\s*[A-Z][A-Za-z]+(?: [A-Za-z&]+)*\s*\)")


def _drop_hw(m):
    """Drop the syllabified headword \\A*ban"don\\ and a following pronunciation, but keep a
    following subject label such as (Bot.), (Zo["o]l.) or (Billiards)."""
    paren = m.group(1)
    p = paren.strip() if paren else ""
    if p.endswith(".)") or _LABEL_RE.fullmatch(p):
        return " " + p
    return "\x02"  # removed; the space before it is dropped too


def gcide_clean(text):
    """Clean dictd-rendered GCIDE text.  Entries are separated by \\x00; inside an entry,
    blank lines separate paragraphs.  Returns the entries with one paragraph per line.
    (Patterns start with literal characters where possible: this runs on ~40 MB.)"""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = re.sub(r"\n *\n\s*", "\x01", text)      # paragraph breaks
    text = text.replace("\n", " ").replace("\x01", "\n")  # reflow wrapped lines
    text = re.sub(r"  +", " ", text)
    text = _HW_RE.sub(_drop_hw, text).replace(" \x02", "").replace("\x02", "")
    text = _SOURCE_RE.sub("", text)
    text = re.sub(r" (?:WordNet 1\.5|1913 Webster)(?: ?\+ ?PJC)?\]", "", text)  # tags missing "["
    text = text.replace("{", "").replace("}", "")
    text = _ESC_RE.sub(_gcide_escape, text)
    text = re.sub(r"  +", " ", text)
    text = re.sub(r" ([,;:)])", r"\1", text).replace("( ", "(")
    for sp, rep in ((" \n", "\n"), ("\n ", "\n"), (" \x00", "\x00"), ("\x00 ", "\x00")):
        text = text.replace(sp, rep)
    text = re.sub(r"\n\n+", "\n", text)
    text = text.replace("\n\x00", "\x00").replace("\x00\n", "\x00")
    return text.strip(" \n")


def docs_gcide(root, files):
    index = os.path.join(root["dict-gcide"], "usr/share/dictd/gcide.index")
    dictf = os.path.join(root["dict-gcide"], "usr/share/dictd/gcide.dict.dz")
    files += ["usr/share/dictd/gcide.dict.dz", "usr/share/dictd/gcide.index"]
    entries = {}
    with open(index, "r", encoding="utf-8") as f:
        for line in f:
            hw, off, ln = line.rstrip("\n").split("\t")
            entries.setdefault((_b64num(off), _b64num(ln)), []).append(hw)
    import gzip
    with gzip.open(dictf, "rb") as f:
        data = f.read()
    raw = []
    for (off, ln) in sorted(entries):
        if all(h.startswith("00-") for h in entries[(off, ln)]):
            continue  # 00-database-info etc.: licence/metadata, not dictionary text
        b = data[off:off + ln]
        try:
            t = b.decode("utf-8")
        except UnicodeDecodeError:
            # 3 stray single-byte characters in v0.48.5 (cp1252 ’ and ç, and 0xB9 used as ’)
            t = b.decode("cp1252", errors="replace").replace("\u00b9", "\u2019")
        raw.append(t.replace("\x00", "").strip())
    texts = [t for t in gcide_clean("\x00".join(raw)).split("\x00") if t]
    for i in range(0, len(texts), GCIDE_GROUP):
        yield "gcide:%d" % i, clean_prose("\n".join(texts[i:i + GCIDE_GROUP]))


# ---------------------------------------------------------------------------------------
# KJV Bible via the package's own `bible` program

_REF_RE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+)$")


def docs_kjv(root, files):
    exe = os.path.join(root["bible-kjv"], "usr/bin/bible")
    data = os.path.join(root["bible-kjv-text"], "usr/lib/bible.data")
    files += ["usr/bin/bible (bible-kjv)", "usr/lib/bible.data (bible-kjv-text)"]
    env = dict(os.environ)
    libdirs = [os.path.join(root["libreadline8"], d)
               for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")]
    libdirs += [os.path.dirname(p) for p in _find(root["libreadline8"], "libreadline.so.8")]
    env["LD_LIBRARY_PATH"] = ":".join([d for d in libdirs if os.path.isdir(d)] +
                                      ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    env["LC_ALL"] = "C"
    # `bible` does not accept an absolute -d path (it is joined to its search path), so give
    # the search path explicitly (-p) and run from the extracted tree.
    cmd = [exe, "-p", os.path.dirname(data), "-d", "bible.data", "-f", "-l", "100000", "Gen1:1-Rev22:21"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, cwd=root["bible-kjv-text"])
    if r.returncode != 0 or not r.stdout:
        raise SystemExit("bible program failed (rc=%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
    out = r.stdout.decode("utf-8")
    chapters, order = {}, []
    nverses = 0
    for line in out.split("\n"):
        if not line.strip():
            continue
        ref, _, verse = line.partition(" ")
        m = _REF_RE.match(ref)
        if not m:
            raise SystemExit("unexpected bible output line: %r" % line[:80])
        key = m.group(1) + m.group(2)
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(verse.strip())
        nverses += 1
    if nverses != 31102 or len(order) != 1189:
        raise SystemExit("bible: expected 31102 verses in 1189 chapters, got %d in %d" % (nverses, len(order)))
    for key in order:
        yield "kjv:" + key, clean_prose("\n".join(chapters[key]))


def _find(top, name):
    res = []
    for d, _, fs in os.walk(top):
        if name in fs:
            res.append(os.path.join(d, name))
    return sorted(res)
