#ifndef BERTSERVE_SERVER_TOKENIZER_TRUNCATION_H_
#define BERTSERVE_SERVER_TOKENIZER_TRUNCATION_H_

#include <cstddef>

namespace bertserve::tokenizer {

// Lengths, in tokens, that two sequences keep.
struct PairLengths {
  size_t first;
  size_t second;
};

// Hugging Face tokenizers' LongestFirst truncation of a pair to at most
// `max_tokens` tokens together (special tokens not counted). If both fit,
// nothing changes. If the shorter one fits in half the budget, it is kept
// whole and the longer one gets the rest. Otherwise both are cut:
// max_tokens / 2 each, and the odd token goes to the longer one (to the
// second one when they are equally long). Pure.
PairLengths TruncateLongestFirst(size_t first, size_t second,
                                 size_t max_tokens);

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_TRUNCATION_H_
