#!/usr/bin/python3
"""Cross-checks the C++ tokenizers against the independent Python references
(gpt2_reference.py, wordpiece_reference.py) on every bundled corpus file and on random
strings drawn from all code points assigned in Python's Unicode version.

    /usr/bin/python3 tests/text/crosscheck.py BUILD/bin/text_tokenize_tool data [N_RANDOM]

Needs Debian's python3-regex. Exit status 0 when every id sequence agrees.
"""
import os, random, subprocess, sys, tempfile, unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpt2_reference, wordpiece_reference  # noqa: E402

tool, data = sys.argv[1], sys.argv[2]
n_random = int(sys.argv[3]) if len(sys.argv) > 3 else 5000

def run(kind, path):
    out = subprocess.run([tool, kind, data, path], check=True, capture_output=True).stdout.decode()
    return out.split("\n")[:-1]

rng = random.Random(20240611)
# Characters new in later Unicode versions than unicodedata's are left out: the `regex`
# module may know them as letters while the C++ tables (from unicodedata) do not.
assigned = [cp for cp in range(1, 0x110000)
            if not 0xD800 <= cp < 0xE000 and unicodedata.category(chr(cp)) != "Cn"]
common = [chr(c) for c in range(1, 128)] + [" "] * 8 + ["\n", "'s", "'ll", " '", "\u03a3", "\u00e9"]
cases = []
for _ in range(n_random):
    n = rng.randint(0, 14)
    cases.append("".join(chr(rng.choice(assigned)) if rng.random() < 0.5 else rng.choice(common)
                         for _ in range(n)))

refs = {"gpt2": gpt2_reference.Ref(os.path.join(data, "gpt2")),
        "wordpiece": wordpiece_reference.Ref(os.path.join(data, "bert", "vocab.txt"))}
failures = 0
with tempfile.TemporaryDirectory() as tmp:
    rand_path = os.path.join(tmp, "random.txt")
    with open(rand_path, "w", encoding="utf-8", newline="") as f:
        f.write("\x00".join(cases))
    for kind, ref in refs.items():
        got = run(kind, rand_path)
        bad = [s for s, g in zip(cases, got) if " ".join(map(str, ref.encode(s))) != g]
        bad += cases[len(got):]
        print(f"{kind}: {len(cases) - len(bad)}/{len(cases)} random strings agree")
        for s in bad[:5]:
            print(f"  mismatch on {s!r}")
        failures += len(bad)
        corpus = os.path.join(data, "corpus")
        for dom in sorted(os.listdir(corpus)):
            for split in ("train", "valid"):
                p = os.path.join(corpus, dom, split + ".txt")
                text = open(p, encoding="utf-8", newline="").read()
                ok = run(kind, p) == [" ".join(map(str, ref.encode(text)))]
                print(f"{kind}: {dom}/{split}.txt {'agrees' if ok else 'DIFFERS'}")
                failures += not ok
sys.exit(1 if failures else 0)
