// libFuzzer target: GPT-2 BPE tokenizer files. The input is encoder.json, a "\n----\n" line,
// vocab.bpe; a tokenizer that loads then encodes and decodes a fixed text (its round trip
// must hold: decode(encode(s)) == s is the tokenizer's promise for any vocabulary that loads
// only when every byte has a token, so only "no crash" is asserted) and decodes every id.
// std::exception (the text library's std::runtime_error naming the file) is the expected
// refusal.
#include <cstdint>
#include <stdexcept>

#include "fuzz_input.h"
#include "gpt2_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static scion::fuzz::MemFile vocab("encoder.json"), merges("vocab.bpe");
  const auto parts = scion::fuzz::split_parts(data, size, 2);
  vocab.set(parts[0]);
  merges.set(parts[1]);
  try {
    scion::text::Gpt2Bpe bpe(vocab.path(), merges.path());
    const auto ids = bpe.encode("Hello world, it's 2024!\n\t  caf\xc3\xa9 \xff");
    (void)bpe.decode(ids);
    for (int64_t id = 0; id < bpe.vocab_size() && id < 4096; ++id) (void)bpe.token_bytes(int32_t(id));
    (void)bpe.eot_id();
  } catch (const std::exception&) {
  }
  return 0;
}
