#!/usr/bin/python3
"""Independent reference for Scion's GPT-2 BPE, used to produce the ids pinned in
tests/text/test_text.cpp.  Straightforward (slow) Python: the `regex` module for GPT-2's
pre-tokenisation pattern (Debian: python3-regex), the byte-to-unicode table, and the
textbook lowest-rank-first merge loop.

    /usr/bin/python3 tests/text/gpt2_reference.py data/gpt2 'Hello world' ...
    /usr/bin/python3 tests/text/gpt2_reference.py data/gpt2 --cpp      # the test table
    /usr/bin/python3 tests/text/gpt2_reference.py data/gpt2 --file F   # ids of a file
"""
import json, os, sys
import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

def byte_table():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table

class Ref:
    def __init__(self, d):
        self.enc = json.load(open(os.path.join(d, "encoder.json"), encoding="utf-8"))
        lines = open(os.path.join(d, "vocab.bpe"), encoding="utf-8").read().split("\n")[1:]
        self.rank = {tuple(l.split()): i for i, l in enumerate(l for l in lines if l.strip())}
        self.b2u = byte_table()
        self.memo = {}

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            best, at = None, -1
            for i in range(len(parts) - 1):
                r = self.rank.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            a, b = parts[at], parts[at + 1]
            merged, i = [], 0
            while i < len(parts):   # merge every occurrence of the pair, left to right
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b); i += 2
                else:
                    merged.append(parts[i]); i += 1
            parts = merged
        return parts

    def encode(self, text):
        ids = []
        for piece in PAT.findall(text):
            if piece not in self.memo:
                word = "".join(self.b2u[b] for b in piece.encode("utf-8"))
                self.memo[piece] = [self.enc[t] for t in self.bpe(word)]
            ids.extend(self.memo[piece])
        return ids

CASES = [
    "Hello world", "", " ", "  ", "   Hello", "Hello  world", "Hello   world  ", "a\n\nb",
    "I'm here", "don't", "they'll", "We've I'd you're it's", "DON'T", "'s", "x's'",
    "123", "3.14159", "1,000,000 dollars", "2021-01-01", "abc123def",
    "café", "naïve résumé", "Ünïcödé", "日本語のテキスト", "中文 字符", "한국어",
    "emoji 😀👍🏽", "👨‍👩‍👧", "line1\nline2\r\n\tindent", "\n", "trailing space ",
    "supercalifragilisticexpialidocious" * 4, "<|endoftext|>", "!!!???...", "$100 & 50%",
    "Ωμέγα αβγ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\u00a0nbsp\u2003em", "tab\tsep", "mixed 'quotes' \"double\"",
]

def cpp_string(s):
    out = '"'
    for b in s.encode("utf-8"):
        c = chr(b)
        if c == '"' or c == "\\":
            out += "\\" + c
        elif 32 <= b < 127:
            out += c
        else:
            out += "\\x%02x" % b
            out += '""'   # end the escape so a following hex digit is not swallowed
    return out + '"'

if __name__ == "__main__":
    ref = Ref(sys.argv[1])
    args = sys.argv[2:]
    if args and args[0] == "--cpp":
        for s in CASES:
            ids = ref.encode(s)
            print("    {%s, {%s}}," % (cpp_string(s), ", ".join(map(str, ids))))
    elif args and args[0] == "--file":
        print(" ".join(map(str, ref.encode(open(args[1], encoding="utf-8", newline="").read()))))
    else:
        for s in args:
            print(ref.encode(s))
