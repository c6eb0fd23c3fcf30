#ifndef BERTSERVE_CLIENT_BENCH_TEXTS_H_
#define BERTSERVE_CLIENT_BENCH_TEXTS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bertserve::cli {

// The texts `bertserve-cli bench` sends: `count` requests of
// `texts_per_request` texts each, every text a run of plain English words
// whose length in words is drawn uniformly from [min_words, max_words].
// The same arguments give the same texts (bench/forward_bench.cc runs the
// raw libtorch loop on exactly what the CLI sends). Thread-compatible, no
// state.
std::vector<std::vector<std::string>> BenchTexts(int min_words, int max_words,
                                                 int texts_per_request, uint64_t seed,
                                                 size_t count);

}  // namespace bertserve::cli

#endif  // BERTSERVE_CLIENT_BENCH_TEXTS_H_
