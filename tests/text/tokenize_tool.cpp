// text_tokenize_tool TOKENIZER DATA_DIR FILE: encodes each NUL-separated text of FILE
// (or the whole file when it holds no NUL) and prints one line of ids per text.
// TOKENIZER: gpt2 | wordpiece. Used by crosscheck.py against the Python references.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "gpt2_bpe.h"
#include "wordpiece.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s gpt2|wordpiece DATA_DIR FILE\n", argv[0]);
    return 2;
  }
  const std::filesystem::path data = argv[2];
  std::unique_ptr<scion::Tokenizer> tok;
  if (!std::strcmp(argv[1], "gpt2")) tok = std::make_unique<scion::text::Gpt2Bpe>(scion::text::Gpt2Bpe::from_dir(data / "gpt2"));
  else tok = std::make_unique<scion::text::WordPiece>(data / "bert" / "vocab.txt");
  std::ifstream f(argv[3], std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string all = ss.str();
  std::string out;
  for (std::size_t pos = 0; pos < all.size();) {
    std::size_t end = all.find('\0', pos);
    if (end == std::string::npos) end = all.size();
    const auto ids = tok->encode(std::string_view(all).substr(pos, end - pos));
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) out.push_back(' ');
      out += std::to_string(ids[i]);
    }
    out.push_back('\n');
    pos = end + 1;
  }
  std::cout << out;
  return 0;
}
