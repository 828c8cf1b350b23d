// PCRE2 for the split patterns (pcre2_split.h).
#include "pcre2_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

namespace scion::text {

struct Pcre2Split::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

namespace {

// Each thread's match data, JIT stack and match context, made once and reused by every match
// of every pattern: creating them per call cost more than matching a short segment.
struct Scratch {
  pcre2_match_data* md = nullptr;
  pcre2_jit_stack* stack = nullptr;
  pcre2_match_context* ctx = nullptr;
  Scratch() {
    // One pair is enough: only the whole match's range is read (a pattern with groups then
    // returns 0, "ovector too small", with that range set).
    md = pcre2_match_data_create(1, nullptr);
    ctx = pcre2_match_context_create(nullptr);
    // Long runs (a page of spaces) need more than JIT's default 32 KiB stack.
    stack = pcre2_jit_stack_create(32 << 10, 8 << 20, nullptr);
    if (!md || !ctx || !stack) throw std::runtime_error("split pattern: PCRE2 could not allocate its match data");
    pcre2_jit_stack_assign(ctx, nullptr, stack);
  }
  ~Scratch() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};

}  // namespace

Pcre2Split::Pcre2Split(const std::string& pattern) : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE at = 0;
  // UCP: \s, \d, \w and POSIX classes by Unicode properties, as the Oniguruma engine of
  // Hugging Face's tokenizers reads them. MATCH_INVALID_UTF: raw bytes that are not UTF-8
  // stay in the text (they match nothing) rather than failing the whole match.
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &at, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::runtime_error("split pattern '" + pattern + "' does not compile (PCRE2, at offset " +
                             std::to_string(at) + "): " + reinterpret_cast<const char*>(msg));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Pcre2Split::~Pcre2Split() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void Pcre2Split::each(std::string_view text, void (*emit)(void*, std::size_t, std::size_t), void* state) const {
  thread_local Scratch scratch;
  const auto* s = reinterpret_cast<PCRE2_SPTR>(text.data());
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.md);
  for (std::size_t pos = 0; pos < text.size();) {
    // The JIT entry point skips pcre2_match's option checks: the split's per-match cost.
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, s, text.size(), pos, 0, scratch.md, scratch.ctx)
                              : pcre2_match(impl_->code, s, text.size(), pos, 0, scratch.md, scratch.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw std::runtime_error(std::string("split pattern: PCRE2 match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const std::size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match: step over one character
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    emit(state, b, e);  // (may match again on this thread: ov is read before)
    pos = e;
  }
}

} // namespace scion::text
