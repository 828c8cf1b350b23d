// Produces tests/text/hf_expected.json: the ids Hugging Face's own tokenizers library (npm
// `tokenizers`, the Rust implementation's Node bindings) gives for a set of texts, with and
// without the special tokens its post-processor adds, and its decoding of them, for each
// tokenizer.json that scripts/fetch-hf-tokenizers.sh fetches. Run once by hand; the tests
// compare tokenizer.hf against the committed output and do not run this.
//
//   scripts/fetch-hf-tokenizers.sh
//   (cd /tmp/x && npm install tokenizers@0.23.2)
//   NODE_PATH=/tmp/x/node_modules node tests/text/hf_reference.js > tests/text/hf_expected.json
const path = require("path");
const { Tokenizer } = require("tokenizers");

const texts = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog. It's 12:30, isn't it? I'll say we'd've DONE.",
  "Größere Häuser kosten 1.234.567,89 € – übermäßig viel, oder?",
  "L'été dernier, nous sommes allés à Besançon ; c'était « très » agréable !",
  "机器学习是人工智能的一个分支。我们今天去北京。",
  "東京は日本の首都です。カタカナとひらがな、漢字を混ぜる。",
  "Привет, мир! Съешь же ещё этих мягких французских булок.",
  "مرحبا بالعالم، كيف حالك اليوم؟",
  "Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️ ✨",
  "def f(x):\n\tif x > 0:\n\t\treturn x ** 2  # square\n    return -x\n",
  "for (int i = 0; i < n; ++i) { sum += a[i]; }  // C++",
  "  leading spaces, trailing   \n\n\n  and   multiple    spaces\t\ttabs \r\n done ",
  "\n",
  "   ",
  "",
  "3.14159 2718281828 1000000 42nd 0x1F 1e-9 12,345",
  "<s>Hello</s> world <s>",
  "<|begin_of_text|>Hi<|end_of_text|> and <|endoftext|> <|im_start|>user\nhi<|im_end|>",
  "Cafe\u0301 vs Café, ﬁ ligature, Ａｂｃ fullwidth",
  "a\u00a0b\u2003c\u3000d zero\u200bwidth",
];

// And the start of each domain's validation text in data/corpus (3000 characters): real
// prose, long enough that Mistral's one-word-per-text BPE meets its splitting.
const fs = require("fs");
const corpus = ["reference", "news", "literature", "biomedical", "cs"].map((d) => {
  const text = fs.readFileSync(path.join(__dirname, "..", "..", "data", "corpus", d, "valid.txt"), "utf8");
  return text.slice(0, 3000);
});
texts.push(...corpus);

const files = { llama3: "data/hf/llama3/tokenizer.json", qwen3: "data/hf/qwen3/tokenizer.json",
                mistral: "data/hf/mistral/tokenizer.json" };
(async () => {
  const root = path.join(__dirname, "..", "..");
  const out = { generator: "npm tokenizers " + require("tokenizers/package.json").version, texts, tokenizers: {} };
  for (const [name, file] of Object.entries(files)) {
    const tok = Tokenizer.fromFile(path.join(root, file));
    const cases = [];
    for (const text of texts) {
      const plain = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
      const special = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
      cases.push({ ids: plain, ids_with_special: special, decoded: await tok.decode(plain, false) });
    }
    out.tokenizers[name] = { file, vocab_size: tok.getVocabSize(true), cases };
  }
  process.stdout.write(JSON.stringify(out, null, 0).replace(/\{"ids"/g, '\n{"ids"') + "\n");
})();
