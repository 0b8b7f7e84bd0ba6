// tools/main.cpp: entry point of the `sageattn` command-line program, and the pieces its commands
// share (tools/cli.h): argument parsing, value parsers, rounding and layouts, the exact float64
// reference and the timed library run.
//
// Exit codes: 0 success; 2 a bad command line (one line naming the value, plus a --help hint) or
// a sageattn::Error ("error: <message>"); 1 anything unexpected (e.g. out of memory).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <iostream>
#include <limits>
#include <thread>

#include "cli.h"
#include "common/numerics.h"
#include "cpu/reference.h"

namespace sageattn::cli {
namespace {

#if defined(SAGEATTN_CLI_WITH_CUDA)
constexpr const char* kBuildKind = "CUDA build";
#else
constexpr const char* kBuildKind = "CPU-only build";
#endif

void print_main_help(std::ostream& os) {
  os << "usage: sageattn <command> [options]\n"
        "\n"
        "sageattn "
     << version()
     << ": 8-bit attention (SageAttention-style). The commands measure\n"
        "accuracy against exact float64 attention, and speed, for each P·V mode.\n"
        "\n"
        "commands:\n"
        "  bench    run a generated problem; print accuracy and speed per P·V mode\n"
        "  check    measure accuracy on your own q, k, v tensors (.npy files)\n"
        "\n"
        "options:\n"
        "  -h, --help    show this help and exit\n"
        "  --version     print the version and exit\n"
        "\n"
        "Run 'sageattn <command> --help' for the options of a command (docs/CLI.md has more).\n";
}

std::string hint_for(const std::string& command) {
  return command.empty() ? "run 'sageattn --help' for usage"
                         : "run 'sageattn " + command + " --help' for usage";
}

bool iequals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

[[noreturn]] void bad_value(const std::string& command, const std::string& option,
                            const std::string& text, const std::string& expected) {
  throw UsageError(command,
                   "invalid value '" + text + "' for " + option + ": expected " + expected);
}

int run(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_main_help(std::cerr);
    return 2;
  }
  const std::string& cmd = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    if (cmd == "help" && !rest.empty()) return run({rest[0], "--help"});
    print_main_help(std::cout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::cout << "sageattn " << version() << " (" << kBuildKind << ")\n";
    return 0;
  }
  if (cmd == "bench") return run_bench(rest);
  if (cmd == "check") return run_check(rest);
  if (!cmd.empty() && cmd[0] == '-') throw UsageError("", "unknown option '" + cmd + "'");
  throw UsageError("", "unknown command '" + cmd + "' (commands: bench, check)");
}

}  // namespace

// ------------------------------------------------------------------ argument parsing

std::optional<std::string> Args::value(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

Args parse_args(const CommandSpec& spec, const std::vector<std::string>& argv) {
  Args args;
  bool options_done = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      args.positionals.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      args.help = true;
      continue;
    }
    const std::size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const auto it = std::find_if(spec.options.begin(), spec.options.end(),
                                 [&](const OptionSpec& o) { return o.name == name; });
    if (it == spec.options.end()) throw UsageError(spec.name, "unknown option '" + name + "'");
    if (it->value_name.empty()) {
      if (eq != std::string::npos)
        throw UsageError(spec.name, "option " + name + " takes no value, got '" + a + "'");
      args.set(name, "");
    } else if (eq != std::string::npos) {
      args.set(name, a.substr(eq + 1));
    } else {
      if (i + 1 >= argv.size())
        throw UsageError(spec.name, "option " + name + " needs a value (" + it->value_name + ")");
      args.set(name, argv[++i]);
    }
  }
  return args;
}

void print_help(const CommandSpec& spec, std::ostream& os) {
  os << "usage: " << spec.synopsis << "\n\n" << spec.description << "\n\noptions:\n";
  std::size_t width = std::string("-h, --help").size();
  for (const OptionSpec& o : spec.options)
    width = std::max(width, o.name.size() + (o.value_name.empty() ? 0 : 1 + o.value_name.size()));
  auto line = [&](const std::string& left, const std::string& text) {
    os << "  " << left << std::string(width + 2 - left.size(), ' ') << text << "\n";
  };
  for (const OptionSpec& o : spec.options) {
    const std::string left = o.value_name.empty() ? o.name : o.name + " " + o.value_name;
    line(left, o.default_text.empty() ? o.help : o.help + " (default: " + o.default_text + ")");
  }
  line("-h, --help", "show this help and exit");
  if (!spec.epilog.empty()) os << "\n" << spec.epilog << "\n";
}

int64_t parse_int(const std::string& command, const std::string& option, const std::string& text,
                  int64_t min_value) {
  const std::string expected = "an integer >= " + std::to_string(min_value);
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used, 10);
  } catch (const std::exception&) {
    bad_value(command, option, text, expected);
  }
  if (used != text.size() || v < min_value) bad_value(command, option, text, expected);
  return v;
}

uint64_t parse_uint64(const std::string& command, const std::string& option,
                      const std::string& text) {
  const std::string expected = "a non-negative integer";
  std::size_t used = 0;
  unsigned long long v = 0;
  if (text.empty() || text[0] == '-') bad_value(command, option, text, expected);
  try {
    v = std::stoull(text, &used, 10);
  } catch (const std::exception&) {
    bad_value(command, option, text, expected);
  }
  if (used != text.size()) bad_value(command, option, text, expected);
  return v;
}

double parse_double(const std::string& command, const std::string& option,
                    const std::string& text) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    bad_value(command, option, text, "a finite number");
  }
  if (used != text.size() || !std::isfinite(v)) bad_value(command, option, text, "a finite number");
  return v;
}

Layout parse_layout(const std::string& command, const std::string& text) {
  if (iequals(text, "HND")) return Layout::kHND;
  if (iequals(text, "NHD")) return Layout::kNHD;
  bad_value(command, "--layout", text, "HND or NHD");
}

DType parse_dtype(const std::string& command, const std::string& text) {
  if (text == "bf16" || text == "bfloat16") return DType::kBF16;
  if (text == "fp16" || text == "f16" || text == "float16") return DType::kF16;
  bad_value(command, "--dtype", text, "bf16 or fp16");
}

Granularity parse_granularity(const std::string& command, const std::string& text) {
  if (text == "per_block") return Granularity::kPerBlock;
  if (text == "per_warp") return Granularity::kPerWarp;
  if (text == "per_thread") return Granularity::kPerThread;
  bad_value(command, "--granularity", text, "per_block, per_warp or per_thread");
}

std::vector<PvMode> parse_modes(const std::string& command, const std::string& text) {
  std::vector<PvMode> modes;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = text.find(',', begin);
    const std::string item = text.substr(begin, end == std::string::npos ? end : end - begin);
    PvMode m;
    if (item == "fp16") {
      m = PvMode::kFp16;
    } else if (item == "fp8") {
      m = PvMode::kFp8;
    } else if (item == "fp8_fp16acc") {
      m = PvMode::kFp8Fp16Acc;
    } else {
      throw UsageError(command, "invalid mode '" + item + "' in --modes '" + text +
                                    "': expected a comma list of fp16, fp8, fp8_fp16acc");
    }
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  return modes;
}

std::vector<OptionSpec> numeric_option_specs(const std::string& dtype_default) {
  return {
      {"--causal", "", "off", "causal mask; bottom-right aligned when the lengths differ"},
      {"--layout", "HND|NHD", "HND", "memory layout of q, k, v: HND = [B,H,N,D], NHD = [B,N,H,D]"},
      {"--dtype", "bf16|fp16", dtype_default, "attention dtype: q, k, v are rounded to it"},
      {"--modes", "LIST", "fp16,fp8,fp8_fp16acc", "comma list of P·V modes to run"},
      {"--granularity", "G", "per_warp",
       "Q/K int8 scale groups: per_block, per_warp or per_thread"},
      {"--no-smooth-k", "", "", "do not subtract the K channel mean (default: K smoothing on)"},
      {"--smooth-v", "", "", "subtract the V channel mean before quantizing (default: off)"},
  };
}

void apply_numeric_options(const std::string& command, const Args& args, Problem& p,
                           std::vector<PvMode>& modes) {
  if (args.flag("--causal")) p.mask = MaskMode::kCausal;
  if (auto v = args.value("--layout")) p.layout = parse_layout(command, *v);
  if (auto v = args.value("--granularity")) p.granularity = parse_granularity(command, *v);
  if (args.flag("--no-smooth-k")) p.smooth_k = Smoothing::kOff;
  if (args.flag("--smooth-v")) p.smooth_v = Smoothing::kOn;
  modes = {PvMode::kFp16, PvMode::kFp8, PvMode::kFp8Fp16Acc};
  if (auto v = args.value("--modes")) modes = parse_modes(command, *v);
}

// ------------------------------------------------------------------ the run core

double Problem::resolved_scale() const {
  // The library's own value: the default 1/sqrt(D) is computed in double and rounded to fp32.
  const float s =
      scale ? *scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  return static_cast<double>(s);
}

double Problem::flops() const {
  const double f = 4.0 * static_cast<double>(batch) * static_cast<double>(heads_q) *
                   static_cast<double>(seqlen_q) * static_cast<double>(seqlen_k) *
                   static_cast<double>(head_dim);
  return mask == MaskMode::kCausal ? f / 2.0 : f;
}

AttentionOptions Problem::options(PvMode mode) const {
  AttentionOptions o;
  o.layout = layout;
  o.mask = mask;
  o.scale = scale;
  o.pv_mode = mode;
  o.granularity = granularity;
  o.smooth_k = smooth_k;
  o.smooth_v = smooth_v;
  o.backend = backend;
  return o;
}

std::vector<int64_t> Problem::shape(int64_t heads, int64_t tokens) const {
  if (layout == Layout::kHND) return {batch, heads, tokens, head_dim};
  return {batch, tokens, heads, head_dim};
}

const char* dtype_name(DType dtype) { return dtype == DType::kBF16 ? "bf16" : "fp16"; }

uint16_t round_to_dtype(double x, DType dtype) {
  // Round to float with round-to-odd (truncate, then set the last bit when inexact), then to the
  // 16-bit format with round-to-nearest-even: exactly one correct rounding, because float keeps
  // at least two more significant bits than bf16 or fp16 (also in their subnormal ranges).
  float f = static_cast<float>(x);
  if (std::isfinite(x) && static_cast<double>(f) != x) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(x)) f = std::nextafter(f, 0.0f);
    f = num::bits_float(num::float_bits(f) | 1u);
  }
  return dtype == DType::kBF16 ? num::bf16_from_float(f) : num::fp16_from_float(f);
}

double decode_dtype(uint16_t bits, DType dtype) {
  return dtype == DType::kBF16 ? num::bf16_to_float(bits) : num::fp16_to_float(bits);
}

std::vector<uint16_t> round_into_layout(const float* logical, int64_t b, int64_t h, int64_t n,
                                        int64_t d, Layout layout, DType dtype) {
  std::vector<uint16_t> out(static_cast<std::size_t>(b * h * n * d));
  for (int64_t ib = 0; ib < b; ++ib)
    for (int64_t ih = 0; ih < h; ++ih)
      for (int64_t in = 0; in < n; ++in) {
        const float* src = logical + ((ib * h + ih) * n + in) * d;
        const int64_t row =
            layout == Layout::kHND ? (ib * h + ih) * n + in : (ib * n + in) * h + ih;
        uint16_t* dst = &out[static_cast<std::size_t>(row * d)];
        for (int64_t id = 0; id < d; ++id) dst[id] = round_to_dtype(src[id], dtype);
      }
  return out;
}

namespace {

TensorView view_of(const Problem& p, const uint16_t* data, int64_t heads, int64_t tokens) {
  void* ptr = const_cast<uint16_t*>(data);
  if (p.layout == Layout::kHND)
    return make_contiguous_view(ptr, p.dtype, {p.batch, heads, tokens, p.head_dim});
  return make_contiguous_view(ptr, p.dtype, {p.batch, tokens, heads, p.head_dim});
}

// Sequence b of a contiguous tensor in the problem's layout, as the reference reads it.
cpu::SeqView seq_view(const Problem& p, const uint16_t* data, int64_t b, int64_t heads,
                      int64_t tokens) {
  cpu::SeqView s;
  s.data = const_cast<uint16_t*>(data) + b * heads * tokens * p.head_dim;
  s.dtype = p.dtype;
  s.heads = heads;
  s.tokens = tokens;
  s.dim = p.head_dim;
  s.stride_h = p.layout == Layout::kHND ? tokens * p.head_dim : p.head_dim;
  s.stride_n = p.layout == Layout::kHND ? p.head_dim : heads * p.head_dim;
  return s;
}

}  // namespace

TensorView q_view(const Problem& p, const uint16_t* data) {
  return view_of(p, data, p.heads_q, p.seqlen_q);
}

TensorView kv_view(const Problem& p, const uint16_t* data) {
  return view_of(p, data, p.heads_kv, p.seqlen_k);
}

void validate(const Problem& p, const Tensors& t) {
  // Shapes and options, on host views: the backend (a GPU one by name) is checked by the GPU run.
  AttentionOptions o = p.options(PvMode::kAuto);
  o.backend = Backend::kAuto;
  attention_workspace_size(q_view(p, t.q.data()), kv_view(p, t.k.data()), kv_view(p, t.v.data()), o);
}

std::vector<double> exact_reference(const Problem& p, const Tensors& t) {
  const int64_t per_batch = p.heads_q * p.seqlen_q * p.head_dim;
  std::vector<double> ref(static_cast<std::size_t>(p.batch * per_batch));
  cpu::ExactConfig cfg;
  cfg.mask = p.mask;
  cfg.scale = p.resolved_scale();
  for (int64_t b = 0; b < p.batch; ++b)
    cpu::exact_attention(seq_view(p, t.q.data(), b, p.heads_q, p.seqlen_q),
                         seq_view(p, t.k.data(), b, p.heads_kv, p.seqlen_k),
                         seq_view(p, t.v.data(), b, p.heads_kv, p.seqlen_k), cfg,
                         ref.data() + b * per_batch, nullptr);
  return ref;
}

ModeResult run_mode(const Problem& p, const Tensors& t, PvMode mode, int64_t warmup, int64_t iters,
                    const std::vector<double>& ref) {
  // The output starts as NaN so that an element the library failed to write cannot pass.
  std::vector<uint16_t> out(t.q.size(), 0x7FFF);
  const TensorView qv = q_view(p, t.q.data()), kv = kv_view(p, t.k.data()),
                   vv = kv_view(p, t.v.data()), ov = q_view(p, out.data());
  const AttentionOptions opts = p.options(mode);
  std::vector<double> times;
  for (int64_t i = 0; i < warmup + iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    attention(qv, kv, vv, ov, opts);
    const auto stop = std::chrono::steady_clock::now();
    if (i >= warmup)
      times.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }

  // Decode the output into logical [B, Hq, Nq, D] order to compare with the reference.
  std::vector<double> got(ref.size());
  const int64_t h = p.heads_q, n = p.seqlen_q, d = p.head_dim;
  for (int64_t ib = 0; ib < p.batch; ++ib)
    for (int64_t ih = 0; ih < h; ++ih)
      for (int64_t in = 0; in < n; ++in) {
        const int64_t row =
            p.layout == Layout::kHND ? (ib * h + ih) * n + in : (ib * n + in) * h + ih;
        const int64_t dst = ((ib * h + ih) * n + in) * d;
        for (int64_t id = 0; id < d; ++id)
          got[static_cast<std::size_t>(dst + id)] =
              decode_dtype(out[static_cast<std::size_t>(row * d + id)], p.dtype);
      }
  ModeResult r;
  r.mode = mode;
  r.metrics = cpu::error_metrics(ref.data(), got.data(), static_cast<int64_t>(ref.size()));
  r.median_ms = times.empty() ? 0.0 : median(times);
  return r;
}

std::string logical_coords(const Problem& p, int64_t index) {
  const int64_t d = index % p.head_dim;
  index /= p.head_dim;
  const int64_t n = index % p.seqlen_q;
  index /= p.seqlen_q;
  const int64_t h = index % p.heads_q;
  const int64_t b = index / p.heads_q;
  return format("[%lld, %lld, %lld, %lld]", static_cast<long long>(b), static_cast<long long>(h),
                static_cast<long long>(n), static_cast<long long>(d));
}

unsigned cpu_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string s(n > 0 ? static_cast<std::size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(s.data(), s.size() + 1, fmt, args);
  va_end(args);
  return s;
}

}  // namespace sageattn::cli

int main(int argc, char** argv) {
  using namespace sageattn;
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return cli::run(args);
  } catch (const cli::UsageError& e) {
    const std::string prefix = e.command().empty() ? "sageattn" : "sageattn " + e.command();
    std::cerr << prefix << ": " << e.what() << " (" << cli::hint_for(e.command()) << ")\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: unexpected failure: " << e.what() << "\n";
    return 1;
  }
}
