// sageattn/error.h: the one exception type of the library.
//
// Every public entry point reports failure by throwing sageattn::Error. Its message names the
// offending argument and value ("head_dim mismatch: q=128 k=64"); its code says what kind of
// failure it was, so callers can branch without parsing text. An entry point that throws has
// written nothing to its output buffers.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace sageattn {

enum class ErrorCode {
  kInvalidArgument,  // a caller's value breaks the contract (shape, dtype, stride, option)
  kUnsupported,      // valid in principle, but not by this build or this device
  kCudaError,        // a CUDA runtime or driver call failed
  kOutOfMemory,      // an allocation failed
  kIoError,          // reading or writing a file failed (tools only)
  kInternal,         // a broken invariant inside the library: a bug, please report it
};

// Short stable name of a code, e.g. "invalid_argument".
const char* to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace sageattn
