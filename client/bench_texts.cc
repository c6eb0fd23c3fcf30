#include "client/bench_texts.h"

#include <random>

namespace bertserve::cli {
namespace {

// Plain English words: texts of a chosen length without a vocabulary at hand.
constexpr const char* kWords[] = {
    "the",     "service", "was",    "slow",    "and",     "the",     "food",   "cold",
    "what",    "a",       "lovely", "day",     "for",     "walk",    "in",     "park",
    "market",  "prices",  "rose",   "sharply", "after",   "report",  "team",   "won",
    "final",   "match",   "late",   "goal",    "new",     "phone",   "battery", "lasts",
    "two",     "days",    "movie",  "plot",    "felt",    "thin",    "but",    "actors",
    "were",    "great",   "delivery", "arrived", "broken", "refund", "please", "thanks",
    "weather", "turned",  "grey",   "again",   "city",    "council", "voted",  "budget",
    "museum",  "opened",  "wing",   "ancient", "coins",   "quiet",   "library", "reading"};

}  // namespace

std::vector<std::vector<std::string>> BenchTexts(int min_words, int max_words,
                                                 int texts_per_request, uint64_t seed,
                                                 size_t count) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> words(min_words, max_words);
  std::uniform_int_distribution<size_t> word(0, sizeof(kWords) / sizeof(kWords[0]) - 1);
  std::vector<std::vector<std::string>> requests(count);
  for (auto& texts : requests) {
    for (int t = 0; t < texts_per_request; ++t) {
      std::string text;
      for (int w = words(rng); w > 0; --w) {
        if (!text.empty()) text += ' ';
        text += kWords[word(rng)];
      }
      texts.push_back(std::move(text));
    }
  }
  return requests;
}

}  // namespace bertserve::cli
