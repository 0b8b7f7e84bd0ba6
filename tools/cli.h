// tools/cli.h: pieces shared by the commands of the `sageattn` program (tools/main.cpp,
// bench.cpp, check.cpp): the hand-written argument parser, value parsers, and the run core that
// rounds inputs, computes the exact float64 reference and runs the library per P·V mode.
//
// Conventions: a bad command line throws UsageError (main prints it on one line with a hint to
// use --help and exits 2); a library or file problem throws sageattn::Error (main prints
// "error: <message>" and exits 2). Tensors handed to the library are host tensors of 16-bit
// bit patterns (bf16 or fp16) in the chosen layout; references and compared outputs are logical
// [B, Hq, Nq, D] float64 arrays.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/metrics.h"
#include "sageattn/attention.h"

namespace sageattn::cli {

// A bad command line. `command` ("bench", "check" or "" for the top level) picks the --help hint.
class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& command, const std::string& message)
      : std::runtime_error(message), command_(command) {}
  const std::string& command() const noexcept { return command_; }

 private:
  std::string command_;
};

// ---- argument parsing ----

struct OptionSpec {
  std::string name;          // "--batch"
  std::string value_name;    // "N"; empty for a flag
  std::string default_text;  // shown in --help as "(default: ...)"; empty: none shown
  std::string help;
};

struct CommandSpec {
  std::string name;         // "bench"
  std::string synopsis;     // "sageattn bench [options]"
  std::string description;  // paragraph(s) printed after the synopsis
  std::vector<OptionSpec> options;
  std::string epilog;  // printed after the options; may be empty
};

class Args {
 public:
  bool help = false;
  std::vector<std::string> positionals;

  bool flag(const std::string& name) const { return values_.count(name) != 0; }
  std::optional<std::string> value(const std::string& name) const;
  void set(const std::string& name, const std::string& value) { values_[name] = value; }

 private:
  std::map<std::string, std::string> values_;
};

// Accepts "--name value", "--name=value", flags, "-h"/"--help", and "--" before positionals.
// Throws UsageError naming an unknown option, a missing value or a value given to a flag.
Args parse_args(const CommandSpec& spec, const std::vector<std::string>& argv);
void print_help(const CommandSpec& spec, std::ostream& os);

// Value parsers: each throws UsageError naming the option and the bad value.
int64_t parse_int(const std::string& command, const std::string& option, const std::string& text,
                  int64_t min_value);
uint64_t parse_uint64(const std::string& command, const std::string& option,
                      const std::string& text);
double parse_double(const std::string& command, const std::string& option, const std::string& text);
Layout parse_layout(const std::string& command, const std::string& text);
DType parse_dtype(const std::string& command, const std::string& text);
Granularity parse_granularity(const std::string& command, const std::string& text);
// Comma list of fp16, fp8, fp8_fp16acc; duplicates are dropped, order is kept.
std::vector<PvMode> parse_modes(const std::string& command, const std::string& text);

// The --modes, --granularity, --layout, --dtype, --causal, --no-smooth-k, --smooth-v options, with
// their help text: both commands take them.
std::vector<OptionSpec> numeric_option_specs(const std::string& dtype_default);

struct Problem;
// Applies those options (all but --dtype, whose default differs per command) to `p` and `modes`.
void apply_numeric_options(const std::string& command, const Args& args, Problem& p,
                           std::vector<PvMode>& modes);

// ---- the run core ----

struct Problem {
  int64_t batch = 1, heads_q = 1, heads_kv = 1, seqlen_q = 0, seqlen_k = 0, head_dim = 0;
  DType dtype = DType::kBF16;  // bf16 or f16: what q, k, v, out are rounded to
  Layout layout = Layout::kHND;
  MaskMode mask = MaskMode::kNone;
  std::optional<float> scale;  // softmax scale; default 1 / sqrt(head_dim)
  Granularity granularity = Granularity::kPerWarp;
  Smoothing smooth_k = Smoothing::kOn;
  Smoothing smooth_v = Smoothing::kOff;
  Backend backend = Backend::kAuto;  // GPU runs: automatic dispatch, or sm80 / sm90 by name

  // The scale the library uses (fp32), as a double for the exact reference.
  double resolved_scale() const;
  // 4 * B * Hq * Nq * Nk * D, halved for causal (DESIGN.md §3).
  double flops() const;
  AttentionOptions options(PvMode mode) const;
  // The shape of q (heads = heads_q, tokens = seqlen_q) or k/v in the problem's layout.
  std::vector<int64_t> shape(int64_t heads, int64_t tokens) const;
};

// q, k, v as 16-bit bit patterns of problem.dtype, in problem.layout, contiguous.
struct Tensors {
  std::vector<uint16_t> q, k, v;
};

// "bf16" or "fp16": the spelling of the --dtype option.
const char* dtype_name(DType dtype);
// Correctly rounded (round-to-nearest-even, once) conversion of a double to bf16 or fp16 bits.
uint16_t round_to_dtype(double x, DType dtype);
double decode_dtype(uint16_t bits, DType dtype);
// Rounds a logical [b, h, n, d] array into `layout` (NHD swaps h and n).
std::vector<uint16_t> round_into_layout(const float* logical, int64_t b, int64_t h, int64_t n,
                                        int64_t d, Layout layout, DType dtype);

// Host TensorViews of the problem's q, k, v (or an output shaped like q).
// The library only reads q, k, v: a view of const data is safe to hand to it.
TensorView q_view(const Problem& p, const uint16_t* data);
TensorView kv_view(const Problem& p, const uint16_t* data);

// Runs the library's own validation on the problem (throws sageattn::Error naming bad values).
void validate(const Problem& p, const Tensors& t);

// Exact float64 attention of the rounded inputs: logical [B, Hq, Nq, D].
std::vector<double> exact_reference(const Problem& p, const Tensors& t);

struct ModeResult {
  PvMode mode = PvMode::kFp8;
  cpu::ErrorMetrics metrics;
  double median_ms = 0.0;
};

// Calls sageattn::attention `warmup` + `iters` times on host tensors, times each call (wall
// clock, end to end), and compares the output with `ref` (logical [B, Hq, Nq, D]).
ModeResult run_mode(const Problem& p, const Tensors& t, PvMode mode, int64_t warmup, int64_t iters,
                    const std::vector<double>& ref);

// "[b, h, n, d]" of a logical [B, Hq, Nq, D] index.
std::string logical_coords(const Problem& p, int64_t index);
// Threads the CPU backend uses (its parallel_for uses one per hardware thread).
unsigned cpu_threads();
// Median of a non-empty list.
double median(std::vector<double> values);
// printf-style formatting into a std::string.
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

int run_bench(const std::vector<std::string>& args);
int run_check(const std::vector<std::string>& args);

}  // namespace sageattn::cli
