#include "server/tokenizer/truncation.h"

#include <algorithm>
#include <utility>

namespace bertserve::tokenizer {

PairLengths TruncateLongestFirst(size_t first, size_t second,
                                 size_t max_tokens) {
  if (first + second <= max_tokens) return {first, second};
  // Mirrors truncate_encodings in tokenizers/src/utils/truncation.rs so
  // that ties and odd budgets come out the same: n1 is the shorter one.
  size_t n1 = first;
  size_t n2 = second;
  const bool swapped = n1 > n2;
  if (swapped) std::swap(n1, n2);
  n2 = n1 > max_tokens ? n1 : std::max(n1, max_tokens - n1);
  if (n1 + n2 > max_tokens) {
    n1 = max_tokens / 2;
    n2 = n1 + max_tokens % 2;
  }
  if (swapped) std::swap(n1, n2);
  return {std::min(first, n1), std::min(second, n2)};
}

}  // namespace bertserve::tokenizer
