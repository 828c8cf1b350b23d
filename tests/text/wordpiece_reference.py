#!/usr/bin/python3
"""Independent reference for Scion's WordPiece (BERT uncased), for cross-checking ids:
BERT's BasicTokenizer (clean, CJK split, whitespace split, lower + NFD + drop Mn,
punctuation split) and greedy longest-match-first WordPiece, in plain Python with the
standard unicodedata module.

    /usr/bin/python3 tests/text/wordpiece_reference.py data/bert/vocab.txt 'I like strawberries'
    /usr/bin/python3 tests/text/wordpiece_reference.py data/bert/vocab.txt --file F
"""
import sys, unicodedata

def is_ws(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"

def is_ctrl(c):
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf")

def is_punct(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")

def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
               (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))

def basic(text):
    out = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or is_ctrl(c):
            continue
        if is_cjk(ord(c)):
            out.append(" " + c + " ")
        else:
            out.append(" " if is_ws(c) else c)
    words = []
    for tok in "".join(out).split():
        tok = tok.lower()
        tok = "".join(c for c in unicodedata.normalize("NFD", tok) if unicodedata.category(c) != "Mn")
        cur = ""
        for c in tok:
            if is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    return words

class Ref:
    def __init__(self, path):
        self.vocab = {t: i for i, t in enumerate(open(path, encoding="utf-8").read().split("\n")[:-1])}

    def encode(self, text):
        ids = []
        for w in basic(text):
            if len(w) > 100:
                ids.append(self.vocab["[UNK]"]); continue
            pieces, start = [], 0
            while start < len(w):
                end = len(w)
                while end > start:
                    sub = w[start:end] if start == 0 else "##" + w[start:end]
                    if sub in self.vocab:
                        break
                    end -= 1
                if end == start:
                    pieces = [self.vocab["[UNK]"]]; break
                pieces.append(self.vocab[sub]); start = end
            ids.extend(pieces)
        return ids

if __name__ == "__main__":
    ref = Ref(sys.argv[1])
    args = sys.argv[2:]
    if args and args[0] == "--file":
        print(" ".join(map(str, ref.encode(open(args[1], encoding="utf-8", newline="").read()))))
    else:
        for s in args:
            print(ref.encode(s))
