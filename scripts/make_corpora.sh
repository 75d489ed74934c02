#!/usr/bin/env bash
# Build byte-level corpora from pinned Debian 12 (and npm) packages (see docs/data.md):
#   <out>/en/    English prose: GCIDE dictionary + KJV Bible + fortunes   (~35 MB)
#   <out>/code/  libstdc++ 12 + Linux UAPI headers + Python 3.11 stdlib   (~28 MB)
#   <out>/zh/    fortunes-zh + npm chinese-poetry 2.0.1, subsampled      (~30 MB)
#   <out>/mixed/ equal shares of en, zh, code by document, + windows.bin/windows.jsonl
# each with train.bin, val.bin (raw UTF-8, documents separated by one blank line),
# train.idx, val.idx (document offsets) and manifest.json.  Debian packages are fetched
# with `apt-get download` into <out>/.debs/, npm tarballs with `npm pack` into <out>/.npm/
# (caches) and unpacked into a temporary directory; nothing is installed.
#
# usage: scripts/make_corpora.sh [options] [en|code|zh|mixed|all ...]   (default: all)
#   all                = en code (the default; fetches nothing from npm)
#   mixed              builds en, zh and code first if they are not up to date
#   --out DIR          output directory (default: data/ in the repository root)
#   --force            rebuild even if DIR/<corpus>/manifest.json matches (mixed: en, zh,
#                      code and mixed)
#   --allow-unpinned   if a pinned .deb is no longer downloadable, use the current
#                      candidate instead (recorded in the manifest; output will differ)
#   --zh-bytes N       size target of zh in bytes (default 30000000)
#   --windows N        mixed: analysis windows per language (default 64)
#   --switch-windows N mixed: switch windows per ordered language pair (default 16)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
HELPER="$HERE/corpora.py"
OUT="$REPO/data"
FORCE=0
UNPINNED=()
CORPORA=()

OPTS=()
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "--out needs a directory" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --force) FORCE=1; shift ;;
    --allow-unpinned) UNPINNED=(--allow-unpinned); shift ;;
    --zh-bytes|--windows|--switch-windows)
      [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "$1 needs a number" >&2; exit 2; }
      OPTS+=("$1" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    all) CORPORA+=(en code); shift ;;
    en|code|zh) CORPORA+=("$1"); shift ;;
    mixed) CORPORA+=(en zh code mixed); shift ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#CORPORA[@]} -gt 0 ] || CORPORA=(en code)
# drop repeats, keeping the first occurrence (mixed needs en, zh, code built before it)
declare -A SEEN=()
UNIQ=()
for c in "${CORPORA[@]}"; do [ -n "${SEEN[$c]:-}" ] || { SEEN[$c]=1; UNIQ+=("$c"); }; done
CORPORA=("${UNIQ[@]}")

if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null; then PY=$(command -v python3)
else echo "[corpora] python3 not found (apt-get install python3, or run scripts/setup.sh)" >&2; exit 1; fi
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "[corpora] $tool not found (Debian 12 required)" >&2; exit 1; }
done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DEBS="$OUT/.debs"
mkdir -p "$DEBS"
UPDATED=0

log() { echo "[corpora] $*" >&2; }

# apt_download DIR SPEC: download SPEC (pkg or pkg=version) into DIR; run `apt-get update`
# once (only) if the first attempt fails.
apt_download() {
  local dir="$1" spec="$2"
  if (cd "$dir" && apt-get download -q "$spec") >"$dir/apt.log" 2>&1; then return 0; fi
  if [ "$UPDATED" -eq 0 ]; then
    log "apt-get download $spec failed; running apt-get update"
    $SUDO apt-get update -qq >&2 || true
    UPDATED=1
    if (cd "$dir" && apt-get download -q "$spec") >"$dir/apt.log" 2>&1; then return 0; fi
  fi
  return 1
}

# fetch_deb PKG VERSION: print the path of the cached .deb, downloading it if needed.
fetch_deb() {
  local pkg="$1" ver="$2" enc f tmp
  enc=${ver//:/%3a}
  for f in "$DEBS/${pkg}_${enc}_"*.deb; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  tmp=$(mktemp -d "$DEBS/.partial.XXXXXX")
  if apt_download "$tmp" "$pkg=$ver"; then
    :
  elif [ ${#UNPINNED[@]} -gt 0 ] && apt_download "$tmp" "$pkg"; then
    log "WARNING: $pkg=$ver is not available; using the current candidate (--allow-unpinned)"
  else
    cat "$tmp/apt.log" >&2 || true
    rm -rf "$tmp"
    log "cannot download $pkg=$ver. The pinned version may have left the archive after a"
    log "Debian point release: update PINS in scripts/corpora.py, or pass --allow-unpinned."
    return 1
  fi
  for f in "$tmp/${pkg}_"*.deb; do
    [ -f "$f" ] || continue
    mv "$f" "$DEBS/"
    rm -rf "$tmp"
    echo "$DEBS/$(basename "$f")"
    return 0
  done
  rm -rf "$tmp"
  log "apt-get download $pkg produced no .deb"
  return 1
}

# fetch_npm NAME VERSION: print the path of the cached tarball, fetching it with `npm pack`
# if needed (the builder checks it against the pinned sha512 integrity).
fetch_npm() {
  local name="$1" ver="$2" f="$OUT/.npm/$1-$2.tgz" tmp
  [ -f "$f" ] && { echo "$f"; return 0; }
  command -v npm >/dev/null || { log "npm not found (apt-get install npm); needed for $name@$ver"; return 1; }
  mkdir -p "$OUT/.npm"
  tmp=$(mktemp -d "$OUT/.npm/.partial.XXXXXX")
  if (cd "$tmp" && npm pack --loglevel=error --fetch-retries=1 "$name@$ver") >"$tmp/npm.log" 2>&1 \
     && [ -f "$tmp/$name-$ver.tgz" ]; then
    mv "$tmp/$name-$ver.tgz" "$f"
    rm -rf "$tmp"
    echo "$f"
    return 0
  fi
  grep -v 'Unknown user config' "$tmp/npm.log" | tail -n 20 >&2 || true
  rm -rf "$tmp"
  log "cannot fetch $name@$ver with npm pack: the npm registry ($(npm config get registry 2>/dev/null))"
  log "is unreachable or does not have this version. Put $name-$ver.tgz into $OUT/.npm/ to build offline."
  return 1
}

T0=$(date +%s%N)
for c in "${CORPORA[@]}"; do
  if [ "$FORCE" -eq 0 ] && "$PY" "$HELPER" uptodate --out "$OUT" "${UNPINNED[@]}" "${OPTS[@]}" "$c"; then
    log "$c: $OUT/$c is up to date (manifest matches); skipping (use --force to rebuild)"
    continue
  fi
  args=()
  while IFS='=' read -r pkg ver; do
    path=$(fetch_deb "$pkg" "$ver")
    args+=(--deb "$pkg=$path")
  done < <("$PY" "$HELPER" pins "$c")
  while IFS='@' read -r name ver; do
    path=$(fetch_npm "$name" "$ver")
    args+=(--npm "$name=$path")
  done < <("$PY" "$HELPER" npm-pins "$c")
  "$PY" "$HELPER" build --out "$OUT" "${UNPINNED[@]}" "${OPTS[@]}" "${args[@]}" "$c"
done
ELAPSED_MS=$(( ($(date +%s%N) - T0) / 1000000 ))

"$PY" "$HELPER" summary --out "$OUT" "${CORPORA[@]}"
printf '[corpora] done in %d.%03ds; output in %s\n' $((ELAPSED_MS / 1000)) $((ELAPSED_MS % 1000)) "$OUT" >&2
