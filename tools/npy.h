// tools/npy.h: reading and writing NumPy .npy files for the `sageattn` program and its tests.
//
// Reads format versions 1.0, 2.0 and 3.0 of little-endian floating-point arrays in C order:
// descr '<f2' (float16), '<f4' (float32) and '<f8' (float64). Every value is converted to double
// exactly (all three formats are subsets of float64). Anything else (another dtype, big-endian
// data, fortran_order True, a truncated file) throws sageattn::Error naming the path and the
// problem: ErrorCode::kIoError when the file cannot be opened or read, kInvalidArgument when its
// contents are not an array this reader accepts. Writers emit version 1.0 headers (2.0 when the
// header would not fit), padded to a multiple of 64 bytes as NumPy does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sageattn::npy {

struct NpyArray {
  std::vector<int64_t> shape;  // () for a 0-d array
  std::string descr;           // '<f2', '<f4' or '<f8'
  int major_version = 1;       // 1, 2 or 3 (the header format it was read from)
  std::vector<double> data;    // C order, product(shape) values, converted exactly

  int64_t numel() const;
  // Size of one element in the file, in bytes (2, 4 or 8).
  int item_size() const;
};

// Loads a whole .npy file. Throws sageattn::Error as described above.
NpyArray load_npy(const std::string& path);

// Writes float32 ('<f4') data of the given shape, C order.
void save_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

// Writes float16 ('<f2') data given as IEEE binary16 bit patterns, C order.
void save_npy_f16(const std::string& path, const std::vector<int64_t>& shape, const uint16_t* bits);

// Writes float64 ('<f8') data, C order.
void save_npy_f64(const std::string& path, const std::vector<int64_t>& shape, const double* data);

// "(2, 3, 4)" style text of a shape, as NumPy prints it ("(3,)" for one dim, "()" for none).
std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace sageattn::npy
