#include "byte_tokenizer.h"

#include <stdexcept>

namespace scion::text {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
  return out;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < 256) out.push_back(static_cast<char>(id));
    else if (!(with_eot_ && id == 256))
      throw std::out_of_range("ByteTokenizer: token id " + std::to_string(id) + " outside the vocabulary (size " +
                              std::to_string(vocab_size()) + ")");
  }
  return out;
}

}  // namespace scion::text
