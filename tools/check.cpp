// tools/check.cpp: `sageattn check q.npy k.npy v.npy`: accuracy of each P·V mode against exact
// float64 attention on the user's own tensors.
//
// The .npy values are rounded (once, correctly) to the attention dtype, and the exact reference is
// computed from the rounded values, so the reported error is the error of the 8-bit algorithm,
// not of the bf16/fp16 input rounding. Shapes are checked by the library's own validation (whose
// messages name the values) before anything runs; the tool itself only checks the rank.
#include <cmath>
#include <iostream>

#include "cli.h"
#include "npy.h"

namespace sageattn::cli {
namespace {

const char* const kCommand = "check";

CommandSpec check_spec() {
  CommandSpec s;
  s.name = kCommand;
  s.synopsis = "sageattn check q.npy k.npy v.npy [options]";
  s.description =
      "Measures cos, relative L1, RMSE and max abs error of each P·V mode against exact float64\n"
      "attention on your own tensors, on the CPU backend (the reference implementation, whose\n"
      "quantization the GPU kernels reproduce).\n"
      "\n"
      "Files: NumPy .npy (format 1.0/2.0/3.0), little-endian float16 '<f2', float32 '<f4' or\n"
      "float64 '<f8', C order; 4-D in the layout ([B,H,N,D] for HND, [B,N,H,D] for NHD) or 3-D\n"
      "([H,N,D] / [N,H,D], batch 1). Save bfloat16 tensors as float32 (exact). Values are rounded\n"
      "to --dtype first and the exact reference is computed from the rounded values.";
  s.options = numeric_option_specs("fp16 if all files are float16, else bf16");
  s.options.push_back({"--scale", "S", "1/sqrt(head_dim)", "softmax scale"});
  s.epilog = "docs/CLI.md explains the metrics and shows an example.";
  return s;
}

struct Loaded {
  std::string path;
  npy::NpyArray array;
  std::vector<int64_t> shape4;  // 4-D in the chosen layout (a 3-D file gets batch 1)
};

Loaded load(const std::string& path, const char* name, Layout layout) {
  Loaded l;
  l.path = path;
  l.array = npy::load_npy(path);
  const std::vector<int64_t>& s = l.array.shape;
  const char* dims =
      layout == Layout::kHND ? "[B, H, N, D] / 3-D [H, N, D]" : "[B, N, H, D] / 3-D [N, H, D]";
  if (s.size() != 3 && s.size() != 4)
    throw Error(
        ErrorCode::kInvalidArgument,
        format("'%s' (%s) has shape %s, %zu-D: check needs 4-D %s for layout %s", path.c_str(),
               name, npy::shape_to_string(s).c_str(), s.size(), dims, to_string(layout)));
  l.shape4 = s;
  if (s.size() == 3) l.shape4.insert(l.shape4.begin(), 1);
  return l;
}

TensorView view4(const Loaded& l, DType dtype, const uint16_t* data) {
  const std::vector<int64_t>& s = l.shape4;
  return make_contiguous_view(const_cast<uint16_t*>(data), dtype, {s[0], s[1], s[2], s[3]});
}

// Rounds a file's values to the dtype; counts the values rounding changed and the non-finite
// values after rounding.
std::vector<uint16_t> round_all(const npy::NpyArray& a, DType dtype, int64_t& changed,
                                int64_t& nonfinite) {
  std::vector<uint16_t> out(a.data.size());
  changed = nonfinite = 0;
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    out[i] = round_to_dtype(a.data[i], dtype);
    const double r = decode_dtype(out[i], dtype);
    if (!std::isfinite(r)) ++nonfinite;
    if (r != a.data[i] && !(std::isnan(r) && std::isnan(a.data[i]))) ++changed;
  }
  return out;
}

const char* const kRowFormat = "%-12s %10s %10s %10s %10s %10s  %s\n";

}  // namespace

int run_check(const std::vector<std::string>& argv) {
  const CommandSpec spec = check_spec();
  const Args args = parse_args(spec, argv);
  if (args.help) {
    print_help(spec, std::cout);
    return 0;
  }
  if (args.positionals.size() != 3)
    throw UsageError(kCommand,
                     format("needs 3 files (q.npy k.npy v.npy), got %zu", args.positionals.size()));
  Problem p;
  std::vector<PvMode> modes;
  apply_numeric_options(kCommand, args, p, modes);
  const std::optional<std::string> dtype_arg = args.value("--dtype");
  if (dtype_arg) p.dtype = parse_dtype(kCommand, *dtype_arg);
  if (auto v = args.value("--scale"))
    p.scale = static_cast<float>(parse_double(kCommand, "--scale", *v));

  const char* names[3] = {"q", "k", "v"};
  std::vector<Loaded> files;
  for (int i = 0; i < 3; ++i) files.push_back(load(args.positionals[i], names[i], p.layout));
  if (!dtype_arg) {
    bool all_f16 = true;
    for (const Loaded& l : files) all_f16 = all_f16 && l.array.descr == "<f2";
    p.dtype = all_f16 ? DType::kF16 : DType::kBF16;
  }

  Tensors t;
  int64_t changed[3], nonfinite[3];
  t.q = round_all(files[0].array, p.dtype, changed[0], nonfinite[0]);
  t.k = round_all(files[1].array, p.dtype, changed[1], nonfinite[1]);
  t.v = round_all(files[2].array, p.dtype, changed[2], nonfinite[2]);

  // The library's validation on the files' own shapes, before any run: its messages name the
  // mismatching values.
  const AttentionOptions opts = p.options(PvMode::kAuto);
  attention_workspace_size(view4(files[0], p.dtype, t.q.data()),
                           view4(files[1], p.dtype, t.k.data()),
                           view4(files[2], p.dtype, t.v.data()), opts);
  const bool nhd = p.layout == Layout::kNHD;
  const std::vector<int64_t>& qs = files[0].shape4;
  const std::vector<int64_t>& ks = files[1].shape4;
  p.batch = qs[0];
  p.heads_q = qs[nhd ? 2 : 1];
  p.seqlen_q = qs[nhd ? 1 : 2];
  p.head_dim = qs[3];
  p.heads_kv = ks[nhd ? 2 : 1];
  p.seqlen_k = ks[nhd ? 1 : 2];

  std::cout << "sageattn " << version() << " check\n"
            << "backend: cpu (the reference implementation), " << cpu_threads() << " thread(s)\n";
  for (int i = 0; i < 3; ++i)
    std::cout << names[i] << ": " << files[i].path << "  shape "
              << npy::shape_to_string(files[i].array.shape) << " '" << files[i].array.descr
              << "' (npy " << files[i].array.major_version << ".0)\n";
  std::cout << format(
                   "problem: batch %lld, heads %lld (kv %lld), seqlen %lld (k %lld), "
                   "head_dim %lld, layout %s, causal %s, scale %.6g%s\n",
                   static_cast<long long>(p.batch), static_cast<long long>(p.heads_q),
                   static_cast<long long>(p.heads_kv), static_cast<long long>(p.seqlen_q),
                   static_cast<long long>(p.seqlen_k), static_cast<long long>(p.head_dim),
                   to_string(p.layout), p.mask == MaskMode::kCausal ? "yes" : "no",
                   p.resolved_scale(), p.scale ? "" : " (1/sqrt(head_dim))")
            << "quantization: granularity " << to_string(p.granularity) << ", smooth_k "
            << to_string(p.smooth_k) << ", smooth_v " << to_string(p.smooth_v) << "\n"
            << "dtype: " << dtype_name(p.dtype)
            << (dtype_arg ? " (--dtype)"
                          : " (default: fp16 when all three files are float16, else bf16)")
            << format("; rounding changed %lld q, %lld k, %lld v values\n",
                      static_cast<long long>(changed[0]), static_cast<long long>(changed[1]),
                      static_cast<long long>(changed[2]))
            << "reference: exact float64 attention computed from the values rounded to "
            << dtype_name(p.dtype) << "\n";
  for (int i = 0; i < 3; ++i)
    if (nonfinite[i])
      std::cout << "warning: " << nonfinite[i] << " value(s) of " << names[i]
                << " are NaN or Inf after rounding to " << dtype_name(p.dtype) << "\n";

  const std::vector<double> ref = exact_reference(p, t);
  std::cout << "\n"
            << format(kRowFormat, "mode", "cos", "rel_l1", "rmse", "max_abs", "ms",
                      "worst at [b, h, n, d]");
  for (PvMode mode : modes) {
    const ModeResult r = run_mode(p, t, mode, 0, 1, ref);
    const cpu::ErrorMetrics& m = r.metrics;
    std::cout << format(kRowFormat, to_string(mode), format("%.7f", m.cos).c_str(),
                        format("%.6f", m.rel_l1).c_str(), format("%.3e", m.rmse).c_str(),
                        format("%.3e", m.max_abs).c_str(), format("%.3f", r.median_ms).c_str(),
                        m.worst >= 0 ? logical_coords(p, m.worst).c_str() : "-");
    if (m.nonfinite_mismatch)
      std::cout << "  warning: " << m.nonfinite_mismatch << " NaN/Inf position(s) of "
                << to_string(mode) << " differ from the reference\n";
    std::cout << std::flush;
  }
  return 0;
}

}  // namespace sageattn::cli
