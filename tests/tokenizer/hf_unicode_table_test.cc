// Holds the character data of server/tokenizer/unicode.h to Hugging Face
// `tokenizers` for every code point: hf/hf_unicode_table.js writes what its
// BertNormalizer and BertPreTokenizer do with each one (CTest runs it first,
// fixture hf_unicode_table), and this test derives the same from our
// functions. Hugging Face's crates carry older Unicode data than utf8proc
// (and Rust's lowercase newer); unicode_overrides.cc records where they
// differ, and a failure here lists the code points to add there.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>

#include "gtest/gtest.h"
#include "server/tokenizer/unicode.h"

namespace bertserve::tokenizer {
namespace {

std::string TablePath() {
  const char* dir = std::getenv("BERTSERVE_TEST_DATA");
  return std::string(dir == nullptr ? "." : dir) + "/hf_unicode_table.txt";
}

std::string Hex(std::u32string_view chars) {
  std::string out;
  char buffer[16];
  for (size_t i = 0; i < chars.size(); ++i) {
    std::snprintf(buffer, sizeof(buffer), "%s%x", i == 0 ? "" : ",",
                  static_cast<unsigned>(chars[i]));
    out += buffer;
  }
  return out;
}

// NFD: decomposition, then a stable sort of each run of non-starters by
// combining class.
std::u32string Nfd(std::u32string_view text) {
  std::u32string out;
  for (char32_t c : text) unicode::AppendCanonicalDecomposition(c, &out);
  for (size_t i = 1; i < out.size(); ++i) {
    for (size_t j = i; j > 0 && unicode::CombiningClass(out[j]) != 0 &&
                       unicode::CombiningClass(out[j - 1]) >
                           unicode::CombiningClass(out[j]);
         --j) {
      std::swap(out[j], out[j - 1]);
    }
  }
  return out;
}

// Our row for `c`, in hf_unicode_table.js's format (without the code point).
std::string OurRow(char32_t c) {
  const std::u32string self(1, c);
  auto same = [](const std::u32string& got, const std::u32string& want) {
    return got == want ? std::string("=") : Hex(got);
  };
  std::string row;
  if (c == 0 || c == 0xFFFD || unicode::IsBertControl(c)) {
    row = "D";
  } else if (unicode::IsBertWhitespace(c) && c != U' ') {
    row = "S";
  } else {
    row = "K";
  }
  row += unicode::IsWhiteSpace(c)          ? " W"
         : unicode::IsBertPunctuation(c)   ? " P"
                                           : " N";
  std::u32string lower;
  unicode::AppendLowercase(c, &lower);
  row += " " + same(lower, self);
  std::u32string stripped;
  for (char32_t d : Nfd(self)) {
    if (!unicode::IsNonspacingMark(d)) stripped.push_back(d);
  }
  row += " " + same(stripped, self);
  const std::u32string before1 = self + U"\u0334";
  const std::u32string after240 = U"\u0345" + self;
  row += " " + same(Nfd(before1), before1);
  row += " " + same(Nfd(after240), after240);
  return row;
}

TEST(HfUnicodeTableTest, EveryCodePointMatchesHuggingFace) {
  std::ifstream in(TablePath());
  ASSERT_TRUE(in) << "cannot open " << TablePath()
                  << " (run through ctest, whose fixture hf_unicode_table "
                     "makes it with hf/hf_unicode_table.js)";
  std::unordered_map<char32_t, std::string> hf;
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    ASSERT_NE(space, std::string::npos) << line;
    hf[static_cast<char32_t>(std::stoul(line.substr(0, space), nullptr, 16))] =
        line.substr(space + 1);
  }
  ASSERT_GT(hf.size(), 100000u);
  int differences = 0;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    auto it = hf.find(c);
    const std::string want = it == hf.end() ? "K N = = = =" : it->second;
    const std::string got = OurRow(c);
    if (got == want) continue;
    ++differences;
    // Every difference, one per line, so that they can be collected.
    std::printf("difference %x hf %s ours %s\n", static_cast<unsigned>(c),
                want.c_str(), got.c_str());
  }
  EXPECT_EQ(differences, 0);
}

}  // namespace
}  // namespace bertserve::tokenizer
