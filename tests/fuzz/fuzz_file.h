#ifndef BERTSERVE_TESTS_FUZZ_FUZZ_FILE_H_
#define BERTSERVE_TESTS_FUZZ_FUZZ_FILE_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bertserve::fuzz {

// An in-memory file (memfd) that the loaders under test open by path, as they
// open files of a model repository, without touching the disk. One per
// process; not thread-safe (libFuzzer runs one input at a time).
class FuzzFile {
 public:
  FuzzFile() : fd_(memfd_create("bertserve-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  FuzzFile(const FuzzFile&) = delete;
  FuzzFile& operator=(const FuzzFile&) = delete;

  // Makes the file hold exactly `data`; returns its path.
  const std::string& Write(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0) std::abort();
    size_t done = 0;
    while (done < size) {
      const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    return path_;
  }

 private:
  const int fd_;
  std::string path_;
};

}  // namespace bertserve::fuzz

#endif  // BERTSERVE_TESTS_FUZZ_FUZZ_FILE_H_
