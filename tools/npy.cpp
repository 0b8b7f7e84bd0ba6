// tools/npy.cpp: .npy reader and writers (see npy.h).
//
// The header is a Python dict literal ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,
// 3), }"); a small tokenizer parses exactly the literals NumPy writes there (strings, True/False,
// tuples of ints, and lists, which only structured dtypes use and which are rejected). Bytes are
// assembled in little-endian order explicitly, so the code does not depend on the host's byte
// order.
#include "npy.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/numerics.h"
#include "sageattn/error.h"

namespace sageattn::npy {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicLen = 6;
constexpr std::size_t kHeaderAlign = 64;     // NumPy pads magic + length + dict to this
constexpr uint64_t kMaxHeaderLen = 1 << 20;  // far above any real header; guards corrupt files

[[noreturn]] void fail(ErrorCode code, const std::string& path, const std::string& what) {
  throw Error(code, "'" + path + "': " + what);
}

// ---- the header dict ----

struct Value {
  enum Kind { kString, kBool, kTuple, kOther } kind = kOther;
  std::string text;           // kString: the string; always: the literal as written
  bool flag = false;          // kBool
  std::vector<int64_t> ints;  // kTuple
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  // Parses the dict; calls on_item(key, value) for every entry.
  template <typename F>
  void parse(F&& on_item) {
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      on_item(key, parse_value());
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return;
    }
    ++pos_;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  [[noreturn]] void bad(const std::string& what) const {
    fail(ErrorCode::kInvalidArgument, path_,
         "malformed .npy header (" + what + " at offset " + std::to_string(pos_) + "): " + s_);
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string");
    ++pos_;
    const std::size_t end = s_.find(quote, pos_);
    if (end == std::string::npos) bad("unterminated string");
    std::string out = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  int64_t parse_int() {
    const std::size_t begin = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    if (pos_ == begin) bad("expected a non-negative integer");
    if (peek() == 'L') ++pos_;  // Python 2 long suffix in very old files
    const std::string digits = s_.substr(begin, pos_ - begin);
    if (digits.size() > 18) bad("integer too large: " + digits);
    return std::stoll(digits);
  }
  Value parse_value() {
    Value v;
    const std::size_t begin = pos_;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = Value::kString;
      v.text = parse_string();
      return v;
    }
    if (s_.compare(pos_, 4, "True") == 0 || s_.compare(pos_, 5, "False") == 0) {
      v.kind = Value::kBool;
      v.flag = s_[pos_] == 'T';
      pos_ += v.flag ? 4 : 5;
      v.text = v.flag ? "True" : "False";
      return v;
    }
    if (c == '(') {
      ++pos_;
      v.kind = Value::kTuple;
      for (;;) {
        skip_ws();
        if (peek() == ')') break;
        v.ints.push_back(parse_int());
        skip_ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        if (peek() != ')') bad("expected ',' or ')' in a tuple");
      }
      ++pos_;
      v.text = s_.substr(begin, pos_ - begin);
      return v;
    }
    // Anything else (a list, as in structured dtypes): skip to the matching bracket and keep the
    // text so the caller can name it.
    int depth = 0;
    while (pos_ < s_.size()) {
      const char x = s_[pos_];
      if (x == '[' || x == '(' || x == '{') ++depth;
      if (x == ']' || x == ')' || x == '}') {
        if (depth == 0) break;
        --depth;
      }
      if (x == ',' && depth == 0) break;
      if (x == '\'' || x == '"') {
        parse_string();
        continue;
      }
      ++pos_;
    }
    v.text = s_.substr(begin, pos_ - begin);
    return v;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

int item_size_of(const std::string& descr) {
  if (descr == "<f2") return 2;
  if (descr == "<f4") return 4;
  if (descr == "<f8") return 8;
  return 0;
}

std::string unsupported_descr_message(const std::string& descr) {
  std::string msg = "unsupported dtype descr '" + descr + "'" +
                    " (accepted: '<f2' float16, '<f4' float32, '<f8' float64, little-endian)";
  if (descr.size() >= 2 && descr[0] == '>')
    msg += "; the data is big-endian: convert it with x.astype('<f4')";
  else if (descr == "|V2" || descr == "<V2")
    msg +=
        "; '|V2' is how NumPy saves bfloat16 (ml_dtypes) arrays: save bf16 tensors as "
        "float32, which is exact: np.save(path, x.astype(np.float32))";
  else
    msg += "; convert it with np.save(path, x.astype(np.float32)) (exact for bf16 data too)";
  return msg;
}

uint64_t read_le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Writes magic, version, header length and the padded dict, then `payload`.
void write_file(const std::string& path, const std::string& descr,
                const std::vector<int64_t>& shape, const std::string& payload) {
  for (int64_t s : shape)
    if (s < 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "'" + path + "': cannot write a negative shape " + shape_to_string(shape));
  std::string dict = "{'descr': '" + descr +
                     "', 'fortran_order': False, 'shape': " + shape_to_string(shape) + ", }";
  // Version 1.0 has a 2-byte header length; longer headers need 2.0 (4 bytes).
  int major = 1;
  std::size_t prefix = kMagicLen + 2 + 2;
  std::size_t total = (prefix + dict.size() + 1 + kHeaderAlign - 1) / kHeaderAlign * kHeaderAlign;
  if (total - prefix > std::numeric_limits<uint16_t>::max()) {
    major = 2;
    prefix = kMagicLen + 2 + 4;
    total = (prefix + dict.size() + 1 + kHeaderAlign - 1) / kHeaderAlign * kHeaderAlign;
  }
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');

  std::string head(kMagic, kMagicLen);
  head.push_back(static_cast<char>(major));
  head.push_back(0);
  put_le(head, dict.size(), major == 1 ? 2 : 4);
  head += dict;

  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f)
    fail(ErrorCode::kIoError, path,
         std::string("cannot open for writing: ") + std::strerror(errno));
  f.write(head.data(), static_cast<std::streamsize>(head.size()));
  f.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  f.flush();
  if (!f) fail(ErrorCode::kIoError, path, "write failed");
}

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

}  // namespace

int64_t NpyArray::numel() const { return checked_numel(shape); }

int NpyArray::item_size() const { return item_size_of(descr); }

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

NpyArray load_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIoError, path, std::string("cannot open: ") + std::strerror(errno));

  unsigned char pre[kMagicLen + 2];
  f.read(reinterpret_cast<char*>(pre), sizeof pre);
  if (f.gcount() != static_cast<std::streamsize>(sizeof pre) ||
      std::memcmp(pre, kMagic, kMagicLen) != 0)
    fail(ErrorCode::kInvalidArgument, path, "not a .npy file (no \\x93NUMPY magic)");
  NpyArray a;
  a.major_version = pre[kMagicLen];
  const int minor = pre[kMagicLen + 1];
  if (a.major_version < 1 || a.major_version > 3 || minor != 0)
    fail(ErrorCode::kInvalidArgument, path,
         "unsupported .npy format version " + std::to_string(a.major_version) + "." +
             std::to_string(minor) + " (accepted: 1.0, 2.0, 3.0)");

  const int len_bytes = a.major_version == 1 ? 2 : 4;
  unsigned char len_buf[4];
  f.read(reinterpret_cast<char*>(len_buf), len_bytes);
  if (f.gcount() != len_bytes) fail(ErrorCode::kInvalidArgument, path, "truncated .npy header");
  const uint64_t header_len = read_le(len_buf, len_bytes);
  if (header_len > kMaxHeaderLen)
    fail(ErrorCode::kInvalidArgument, path,
         "implausible .npy header length " + std::to_string(header_len) + " bytes");
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  if (static_cast<uint64_t>(f.gcount()) != header_len)
    fail(ErrorCode::kInvalidArgument, path,
         "truncated .npy header (expected " + std::to_string(header_len) + " bytes)");

  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  HeaderParser(header, path).parse([&](const std::string& key, const Value& v) {
    if (key == "descr") {
      have_descr = true;
      if (v.kind != Value::kString)
        fail(ErrorCode::kInvalidArgument, path,
             "structured dtype descr " + v.text +
                 " is not supported (accepted: '<f2' float16, "
                 "'<f4' float32, '<f8' float64)");
      a.descr = v.text;
    } else if (key == "fortran_order") {
      have_order = true;
      if (v.kind != Value::kBool)
        fail(ErrorCode::kInvalidArgument, path,
             "fortran_order must be True or False, got " + v.text);
      fortran = v.flag;
    } else if (key == "shape") {
      have_shape = true;
      if (v.kind != Value::kTuple)
        fail(ErrorCode::kInvalidArgument, path, "shape must be a tuple of integers, got " + v.text);
      a.shape = v.ints;
    }
  });
  if (!have_descr || !have_order || !have_shape)
    fail(ErrorCode::kInvalidArgument, path,
         "malformed .npy header (needs 'descr', 'fortran_order' and 'shape'): " + header);
  if (item_size_of(a.descr) == 0)
    fail(ErrorCode::kInvalidArgument, path, unsupported_descr_message(a.descr));
  if (fortran)
    fail(ErrorCode::kInvalidArgument, path,
         "array is stored in Fortran (column-major) order (fortran_order: True); only C order is "
         "accepted: save it with np.save(path, np.ascontiguousarray(x))");

  int64_t numel = 1;
  for (int64_t s : a.shape) {
    if (s != 0 && numel > std::numeric_limits<int64_t>::max() / 8 / s)
      fail(ErrorCode::kInvalidArgument, path,
           "shape " + shape_to_string(a.shape) + " is too large");
    numel *= s;
  }
  const int item = item_size_of(a.descr);
  const uint64_t bytes = static_cast<uint64_t>(numel) * static_cast<uint64_t>(item);
  // Check the size before allocating: a corrupt shape must not become a huge allocation.
  const std::streamoff data_begin = f.tellg();
  f.seekg(0, std::ios::end);
  const std::streamoff file_end = f.tellg();
  f.seekg(data_begin);
  const uint64_t available =
      file_end > data_begin ? static_cast<uint64_t>(file_end - data_begin) : 0;
  if (available < bytes)
    fail(ErrorCode::kInvalidArgument, path,
         "truncated data: shape " + shape_to_string(a.shape) + " of '" + a.descr + "' needs " +
             std::to_string(bytes) + " bytes, the file has " + std::to_string(available));
  std::vector<unsigned char> raw(bytes);
  f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(bytes));
  if (static_cast<uint64_t>(f.gcount()) != bytes) fail(ErrorCode::kIoError, path, "read failed");

  a.data.resize(static_cast<std::size_t>(numel));
  for (int64_t i = 0; i < numel; ++i) {
    const uint64_t bits = read_le(&raw[static_cast<std::size_t>(i) * item], item);
    double x;
    if (item == 2) {
      x = num::fp16_to_float(static_cast<uint16_t>(bits));
    } else if (item == 4) {
      x = num::bits_float(static_cast<uint32_t>(bits));
    } else {
      std::memcpy(&x, &bits, sizeof x);
    }
    a.data[static_cast<std::size_t>(i)] = x;
  }
  return a;
}

void save_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  const int64_t n = checked_numel(shape);
  std::string payload;
  payload.reserve(static_cast<std::size_t>(n) * 4);
  for (int64_t i = 0; i < n; ++i) put_le(payload, num::float_bits(data[i]), 4);
  write_file(path, "<f4", shape, payload);
}

void save_npy_f16(const std::string& path, const std::vector<int64_t>& shape,
                  const uint16_t* bits) {
  const int64_t n = checked_numel(shape);
  std::string payload;
  payload.reserve(static_cast<std::size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) put_le(payload, bits[i], 2);
  write_file(path, "<f2", shape, payload);
}

void save_npy_f64(const std::string& path, const std::vector<int64_t>& shape, const double* data) {
  const int64_t n = checked_numel(shape);
  std::string payload;
  payload.reserve(static_cast<std::size_t>(n) * 8);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t bits;
    std::memcpy(&bits, &data[i], sizeof bits);
    put_le(payload, bits, 8);
  }
  write_file(path, "<f8", shape, payload);
}

}  // namespace sageattn::npy
