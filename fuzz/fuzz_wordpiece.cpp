// libFuzzer target: BERT WordPiece vocab.txt. A vocabulary that loads then encodes and decodes
// a fixed text, cased and uncased. std::exception naming the file is the expected refusal.
#include <cstdint>
#include <stdexcept>

#include "fuzz_input.h"
#include "wordpiece.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static scion::fuzz::MemFile vocab("vocab.txt");
  vocab.set({reinterpret_cast<const char*>(data), size});
  for (bool lower : {true, false}) {
    try {
      scion::text::WordPiece wp(vocab.path(), lower);
      const auto ids = wp.encode("Hello, W\xc3\xb6rld! unaffable \xe4\xb8\xad\xe6\x96\x87 [MASK] x\x01y");
      (void)wp.decode(ids);
      (void)wp.vocab_size();
    } catch (const std::exception&) {
    }
  }
  return 0;
}
