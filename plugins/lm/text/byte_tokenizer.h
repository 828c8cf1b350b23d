// The trivial tokenizer: one id per byte (0..255), plus an optional end-of-text id 256.
#pragma once
#include "scion/plugin.h"

namespace scion::text {

class ByteTokenizer final : public scion::Tokenizer {
public:
  explicit ByteTokenizer(bool with_eot = true) : with_eot_(with_eot) {}
  std::vector<int32_t> encode(std::string_view text) const override;
  // The end-of-text id decodes to nothing; other ids outside 0..255 throw std::out_of_range.
  std::string decode(std::span<const int32_t> ids) const override;
  int64_t vocab_size() const override { return with_eot_ ? 257 : 256; }
  int32_t eot_id() const override { return with_eot_ ? 256 : -1; }

private:
  bool with_eot_;
};

} // namespace scion::text
