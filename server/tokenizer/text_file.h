#ifndef BERTSERVE_SERVER_TOKENIZER_TEXT_FILE_H_
#define BERTSERVE_SERVER_TOKENIZER_TEXT_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace bertserve::tokenizer {

// Reads a whole file. A missing file is NotFound, an unreadable one
// (permissions, a directory, an I/O error) InvalidArgument; both messages
// name `what` ("vocab file", "tokenizer.json") and the path.
absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         std::string_view what);

}  // namespace bertserve::tokenizer

#endif  // BERTSERVE_SERVER_TOKENIZER_TEXT_FILE_H_
