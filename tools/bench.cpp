// tools/bench.cpp: `sageattn bench`: accuracy against exact float64 attention and end-to-end speed
// of each P·V mode on a generated problem (DESIGN.md §3).
//
// Flow per input family: generate logical [B, H, N, D] floats (cpu::make_inputs), round them to
// the attention dtype and lay them out (HND or NHD), time the exact float64 reference on the
// rounded values, then for each mode call sageattn::attention `warmup` + `iters` times on host
// tensors, take the median wall time, and compare the output with the reference. The output
// buffer starts as NaN and the last run's output is compared, so an unwritten element cannot pass.
//
// On the GPU (CUDA builds, a device and kernels present; tools/gpu_run.h) inputs are uploaded
// once, the timing uses CUDA events on a non-default stream (end to end, and kernel-only beside
// it), and accuracy is measured on the first query heads against exact float64 attention.
// --device auto uses the GPU when it can and otherwise prints why it runs on the CPU.
#include <chrono>
#include <fstream>
#include <iostream>

#include "cli.h"
#include "cpu/inputs.h"
#if defined(SAGEATTN_CLI_WITH_CUDA)
#include "api/gpu_backend.h"  // detail::gpu_device_count(), for the "why not the GPU" line
#include "gpu_run.h"
#endif

namespace sageattn::cli {
namespace {

const char* const kCommand = "bench";

// Problem sizes when --batch / --heads / --seqlen are not given. The CPU backend is the
// quantization-faithful reference (scalar emulation), so its defaults finish in a few seconds on
// two cores; the GPU defaults are sized to keep a GPU busy and inputs larger than L2.
constexpr int64_t kCpuBatch = 1, kCpuHeads = 4, kCpuSeqlen = 1024;
constexpr int64_t kGpuBatch = 4, kGpuHeads = 32, kGpuSeqlen = 4096;
constexpr int64_t kCpuWarmup = 1, kCpuIters = 3;
constexpr int64_t kGpuWarmup = 5, kGpuIters = 20;
constexpr int64_t kDefaultHeadDim = 128;

// DESIGN.md §3: exactly this header, one row per (implementation, problem).
const char* const kCsvHeader =
    "impl,mode,hd,causal,seqlen,batch,heads,e2e_tflops,kernel_tflops,cos,rel_l1";
const char* const kCsvImplCpu = "sageattn-cpu";
const char* const kCsvImplGpu = "sageattn";  // automatic dispatch: what users get
// The part of the output checked against float64 attention on the GPU path: the last rows of the
// first query heads of batch 0 (a float64 reference of a whole GPU-sized problem takes minutes).
constexpr int64_t kGpuCheckedHeads = 4, kGpuCheckedRows = 512;

enum class Device { kAuto, kCpu, kGpu };

CommandSpec bench_spec() {
  CommandSpec s;
  s.name = kCommand;
  s.synopsis = "sageattn bench [options]";
  s.description =
      "Runs a generated problem and prints, for each P·V mode, the accuracy against exact\n"
      "float64 attention (computed from the same rounded inputs) and the median end-to-end time\n"
      "(bf16/fp16 in and out, every quantization step included), plus the time of the exact\n"
      "reference itself. FLOPs = 4*B*Hq*Nq*Nk*D, halved for causal.";
  const std::string cpu_gpu = " on the CPU, ";
  s.options = {
      {"--batch", "N",
       std::to_string(kCpuBatch) + cpu_gpu + std::to_string(kGpuBatch) + " on the GPU",
       "batch size"},
      {"--heads", "N",
       std::to_string(kCpuHeads) + cpu_gpu + std::to_string(kGpuHeads) + " on the GPU",
       "query heads"},
      {"--heads-kv", "N", "heads", "key/value heads (GQA/MQA: must divide heads)"},
      {"--seqlen", "N",
       std::to_string(kCpuSeqlen) + cpu_gpu + std::to_string(kGpuSeqlen) + " on the GPU",
       "query tokens"},
      {"--seqlen-k", "N", "seqlen", "key/value tokens"},
      {"--head-dim", "D", std::to_string(kDefaultHeadDim), "head dim (multiple of 8, 8..256)"},
  };
  for (OptionSpec& o : numeric_option_specs("bf16")) s.options.push_back(o);
  const std::vector<OptionSpec> rest = {
      {"--family", "F", "gaussian", "inputs: gaussian, k_channel_bias, outliers, or all"},
      {"--device", "auto|cpu|gpu", "auto", "auto: the GPU when available, else the CPU"},
      {"--backend", "auto|sm80|sm90", "auto",
       "GPU kernels: auto (sm90 where it serves the call, else sm80) or one by name"},
      {"--iters", "N",
       std::to_string(kCpuIters) + cpu_gpu + std::to_string(kGpuIters) + " on the GPU",
       "timed runs per mode; the median is reported"},
      {"--warmup", "N",
       std::to_string(kCpuWarmup) + cpu_gpu + std::to_string(kGpuWarmup) + " on the GPU",
       "untimed runs per mode before timing"},
      {"--seed", "S", "0", "seed of the generated inputs"},
      {"--csv", "FILE", "", "append one row per mode to FILE (header written when new)"},
  };
  s.options.insert(s.options.end(), rest.begin(), rest.end());
  s.epilog = std::string(
                 "Input families (DESIGN.md §3): gaussian: q, k, v ~ N(0,1); k_channel_bias:\n"
                 "k += 6*N(0,1) per (head, channel); outliers: k_channel_bias, 4 channels of q\n"
                 "and k x10, v += 3*N(0,1) per channel.\n"
                 "CSV columns: ") +
             kCsvHeader +
             "\n(impl sageattn-cpu on the CPU with kernel_tflops empty; impl sageattn on the GPU,\n"
             "sageattn-sm80 / sageattn-sm90 with --backend).\n"
             "docs/CLI.md has the details.";
  return s;
}

// Why the GPU cannot be used, for the printed line and for the --device gpu error.
std::string no_gpu_reason() {
#if defined(SAGEATTN_CLI_WITH_CUDA)
  const int count = detail::gpu_device_count();
  if (count == 0) return "no CUDA device found";
  try {  // the usual case: kernels exist, but not for this device's architecture
    detail::gpu_require_kernel_image(0);
  } catch (const Error& e) {
    return e.what();
  }
  return "this build has no GPU attention kernels for the " + std::to_string(count) +
         " CUDA device(s) present";
#else
  return "no GPU backend in this build (built without CUDA)";
#endif
}

struct CsvRow {
  std::string mode;
  double tflops = 0.0, kernel_tflops = 0.0, cos = 0.0, rel_l1 = 0.0;
};

// Checks, before anything runs, that FILE can be appended to and that an existing FILE has
// exactly our header, so rows never join a file of another format. Returns whether the header
// must be written (a new or empty file).
bool check_csv(const std::string& path) {
  std::ifstream in(path);
  std::string first;
  if (!in || !std::getline(in, first) || first.empty()) {
    std::ofstream probe(path, std::ios::app);
    if (!probe) throw Error(ErrorCode::kIoError, "--csv '" + path + "': cannot open for writing");
    return true;
  }
  if (!first.empty() && first.back() == '\r') first.pop_back();
  if (first != kCsvHeader)
    throw Error(ErrorCode::kInvalidArgument, "--csv '" + path +
                                                 "' exists with a different header '" + first +
                                                 "' (expected '" + kCsvHeader + "')");
  std::ofstream probe(path, std::ios::app);
  if (!probe) throw Error(ErrorCode::kIoError, "--csv '" + path + "': cannot open for writing");
  return false;
}

void write_csv(const std::string& path, bool header, const Problem& p, bool gpu,
               const std::vector<CsvRow>& rows) {
  std::ofstream out(path, std::ios::app);
  if (header) out << kCsvHeader << "\n";
  for (const CsvRow& r : rows)
    out << (!gpu ? std::string(kCsvImplCpu)
                 : p.backend == Backend::kAuto ? std::string(kCsvImplGpu)
                                               : std::string(kCsvImplGpu) + "-" + to_string(p.backend))
        << "," << r.mode << "," << p.head_dim << ","
        << (p.mask == MaskMode::kCausal ? 1 : 0) << "," << p.seqlen_q << "," << p.batch << ","
        << p.heads_q << "," << format("%.6g", r.tflops) << ","
        << (r.kernel_tflops > 0 ? format("%.6g", r.kernel_tflops) : std::string()) << ","
        << format("%.8f", r.cos) << "," << format("%.6g", r.rel_l1) << "\n";
  out.flush();
  if (!out) throw Error(ErrorCode::kIoError, "--csv '" + path + "': write failed");
}

const char* const kRowFormat = "%-12s %10s %10s %10s %10s %12s %10s\n";
const char* const kGpuRowFormat = "%-12s %10s %10s %10s %10s %10s %10s %10s %10s %9s %7s\n";

void print_table_header(bool gpu) {
  if (gpu)
    std::cout << format(kGpuRowFormat, "mode", "cos", "rel_l1", "rmse", "max_abs", "e2e_ms",
                        "e2e_TFLOPS", "kernel_ms", "kern_TFLOPS", "quant_ms", "quant%");
  else
    std::cout << format(kRowFormat, "mode", "cos", "rel_l1", "rmse", "max_abs", "median_ms",
                        "GFLOPS");
}

#if defined(SAGEATTN_CLI_WITH_CUDA)
std::string tflops(const Problem& p, double ms) {
  return ms > 0.0 ? format("%.1f", p.flops() / (ms * 1e-3) / 1e12) : "-";
}
#endif

std::string gflops(const Problem& p, double ms) {
  return ms > 0.0 ? format("%.3f", p.flops() / (ms * 1e-3) / 1e9) : "-";
}

// Everything the header reports, parsed from the command line.
struct Setup {
  Problem p;
  std::string device_line;
  bool gpu = false;
  bool sized = false;  // any of --batch / --heads / --seqlen given
  int64_t iters = 0, warmup = 0;
  uint64_t seed = 0;
};

void print_header(const Setup& s) {
  const Problem& p = s.p;
  auto ll = [](int64_t v) { return static_cast<long long>(v); };
  std::cout << "sageattn " << version() << " bench\n"
            << s.device_line << "\n"
            << (!s.gpu ? "backend: cpu, " + std::to_string(cpu_threads()) + " thread(s)\n"
                : p.backend == Backend::kAuto
                    ? std::string("backend: gpu (automatic dispatch: sm90 where it serves the call, else sm80)\n")
                    : std::string("backend: gpu, ") + to_string(p.backend) + " (requested)\n")
            << format(
                   "problem: batch %lld, heads %lld (kv %lld), seqlen %lld (k %lld), "
                   "head_dim %lld, dtype %s, layout %s, causal %s\n",
                   ll(p.batch), ll(p.heads_q), ll(p.heads_kv), ll(p.seqlen_q), ll(p.seqlen_k),
                   ll(p.head_dim), dtype_name(p.dtype), to_string(p.layout),
                   p.mask == MaskMode::kCausal ? "yes" : "no")
            << format(
                   "sizes: %s (defaults: batch %lld, heads %lld, seqlen %lld on the CPU; "
                   "batch %lld, heads %lld, seqlen %lld on the GPU)\n",
                   s.sized ? "from the options" : s.gpu ? "the GPU defaults" : "the CPU defaults",
                   ll(kCpuBatch), ll(kCpuHeads),
                   ll(kCpuSeqlen), ll(kGpuBatch), ll(kGpuHeads), ll(kGpuSeqlen))
            << "quantization: granularity " << to_string(p.granularity) << ", smooth_k "
            << to_string(p.smooth_k) << ", smooth_v " << to_string(p.smooth_v) << ", scale "
            << format("%.6g", p.resolved_scale()) << " (1/sqrt(head_dim))\n"
            << "inputs: seed " << s.seed << ", rounded to " << dtype_name(p.dtype)
            << "; reference: exact float64 attention of the rounded inputs"
            << (s.gpu ? format(" (batch 0, first %lld query heads, last %lld query rows)",
                               ll(kGpuCheckedHeads), ll(kGpuCheckedRows))
                      : "")
            << "\n";
  if (s.gpu)
    std::cout << format(
        "timing: median of %lld run(s) after %lld warm-up run(s), CUDA events on a non-default "
        "stream; e2e = device %s in and out with every quantization step; kernel = the "
        "attention kernel alone; quant = the quantization kernels of those same runs (which "
        "alternate with the e2e runs), quant%% = quant / (quant + kernel); %.4g GFLOP per run\n",
        ll(s.iters), ll(s.warmup), dtype_name(p.dtype), p.flops() / 1e9);
  else
    std::cout << format(
        "timing: median of %lld run(s) after %lld warm-up run(s), wall clock, end to end (host "
        "%s in and out); %.4g GFLOP per run\n",
        ll(s.iters), ll(s.warmup), dtype_name(p.dtype), p.flops() / 1e9);
}

}  // namespace

int run_bench(const std::vector<std::string>& argv) {
  const CommandSpec spec = bench_spec();
  const Args args = parse_args(spec, argv);
  if (args.help) {
    print_help(spec, std::cout);
    return 0;
  }
  if (!args.positionals.empty())
    throw UsageError(kCommand, "unexpected argument '" + args.positionals[0] + "'");

  // ---- options: all parsed before anything runs, so a bad value never costs a run ----
  Device device = Device::kAuto;
  if (auto v = args.value("--device")) {
    if (*v == "auto")
      device = Device::kAuto;
    else if (*v == "cpu")
      device = Device::kCpu;
    else if (*v == "gpu")
      device = Device::kGpu;
    else
      throw UsageError(kCommand,
                       "invalid value '" + *v + "' for --device: expected auto, cpu or gpu");
  }
  Setup setup;
  Problem& p = setup.p;
  std::vector<PvMode> modes;
  apply_numeric_options(kCommand, args, p, modes);
  p.dtype = DType::kBF16;
  if (auto v = args.value("--dtype")) p.dtype = parse_dtype(kCommand, *v);
  if (auto v = args.value("--backend")) {
    if (*v == "sm80") p.backend = Backend::kSm80;
    else if (*v == "sm90") p.backend = Backend::kSm90;
    else if (*v != "auto")
      throw UsageError(kCommand, "invalid value '" + *v + "' for --backend: expected auto, sm80 or sm90");
  }
  std::vector<cpu::InputFamily> families = {cpu::InputFamily::kGaussian};
  if (auto v = args.value("--family")) {
    if (*v == "all") {
      families = {cpu::InputFamily::kGaussian, cpu::InputFamily::kKChannelBias,
                  cpu::InputFamily::kOutliers};
    } else if (*v == "gaussian" || *v == "k_channel_bias" || *v == "outliers") {
      families = {cpu::parse_input_family(*v)};
    } else {
      throw UsageError(kCommand, "invalid value '" + *v +
                                     "' for --family: expected gaussian, k_channel_bias, outliers "
                                     "or all");
    }
  }
  auto int_opt = [&](const char* name, int64_t fallback, int64_t min_value) {
    const auto v = args.value(name);
    return v ? parse_int(kCommand, name, *v, min_value) : fallback;
  };
  // ---- device (decides the default sizes) ----
  const bool gpu = gpu_available();
  if (device == Device::kGpu && !gpu)
    throw Error(ErrorCode::kUnsupported,
                "--device gpu: " + no_gpu_reason() + "; run with --device cpu (or auto)");
  setup.gpu = device != Device::kCpu && gpu;
#if !defined(SAGEATTN_CLI_WITH_CUDA)
  setup.gpu = false;  // gpu_available() is false without CUDA; this keeps the linker honest
#endif
  const bool g = setup.gpu;
  if (!g && p.backend != Backend::kAuto)
    throw UsageError(kCommand, std::string("--backend ") + to_string(p.backend) +
                                   " needs the GPU, but this run is on the CPU");
  setup.sized = args.value("--batch") || args.value("--heads") || args.value("--seqlen");
  p.batch = int_opt("--batch", g ? kGpuBatch : kCpuBatch, 1);
  p.heads_q = int_opt("--heads", g ? kGpuHeads : kCpuHeads, 1);
  p.heads_kv = int_opt("--heads-kv", p.heads_q, 1);
  p.seqlen_q = int_opt("--seqlen", g ? kGpuSeqlen : kCpuSeqlen, 1);
  p.seqlen_k = int_opt("--seqlen-k", p.seqlen_q, 1);
  p.head_dim = int_opt("--head-dim", kDefaultHeadDim, 1);
  setup.iters = int_opt("--iters", g ? kGpuIters : kCpuIters, 1);
  setup.warmup = int_opt("--warmup", g ? kGpuWarmup : kCpuWarmup, 0);
  if (auto v = args.value("--seed")) setup.seed = parse_uint64(kCommand, "--seed", *v);
  const std::optional<std::string> csv = args.value("--csv");
  if (csv && csv->empty()) throw UsageError(kCommand, "option --csv needs a file name");

  if (setup.gpu) {
#if defined(SAGEATTN_CLI_WITH_CUDA)
    setup.device_line = std::string("device: ") + (device == Device::kAuto ? "auto -> " : "") +
                        "gpu: " + gpu_description();
#endif
  } else {
    setup.device_line =
        device == Device::kAuto
            ? "device: auto -> cpu: " + no_gpu_reason() +
                  ": using the CPU backend (the reference implementation)"
            : "device: cpu (requested): the CPU backend (the reference implementation)";
  }
  const bool csv_header = csv ? check_csv(*csv) : false;

  std::vector<CsvRow> rows;
  bool header_printed = false;
  for (cpu::InputFamily family : families) {
    const cpu::QkvData data = cpu::make_inputs(family, p.batch, p.heads_q, p.heads_kv, p.seqlen_q,
                                               p.seqlen_k, p.head_dim, setup.seed);
    Tensors t;
    t.q = round_into_layout(data.q.data(), p.batch, p.heads_q, p.seqlen_q, p.head_dim, p.layout,
                            p.dtype);
    t.k = round_into_layout(data.k.data(), p.batch, p.heads_kv, p.seqlen_k, p.head_dim, p.layout,
                            p.dtype);
    t.v = round_into_layout(data.v.data(), p.batch, p.heads_kv, p.seqlen_k, p.head_dim, p.layout,
                            p.dtype);
    validate(p, t);  // the library's own checks: a bad shape stops here, before any output

    if (!header_printed) print_header(setup);
    header_printed = true;

    std::cout << "\nfamily: " << cpu::to_string(family) << "\n";
    print_table_header(setup.gpu);
#if defined(SAGEATTN_CLI_WITH_CUDA)
    if (setup.gpu) {
      const auto start = std::chrono::steady_clock::now();
      const SubsetReference ref = exact_reference_subset(p, t, kGpuCheckedHeads, kGpuCheckedRows);
      const double ref_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - start)
                                .count();
      std::cout << format("(exact float64 reference of %lld head(s) x %lld row(s) on the CPU: %.0f ms)\n",
                          static_cast<long long>(ref.heads), static_cast<long long>(ref.rows), ref_ms);
      for (PvMode mode : modes) {
        const GpuModeResult r = run_mode_gpu(p, t, mode, setup.warmup, setup.iters, ref);
        const cpu::ErrorMetrics& m = r.result.metrics;
        std::cout << format(kGpuRowFormat, to_string(mode), format("%.7f", m.cos).c_str(),
                            format("%.6f", m.rel_l1).c_str(), format("%.3e", m.rmse).c_str(),
                            format("%.3e", m.max_abs).c_str(),
                            format("%.3f", r.result.median_ms).c_str(),
                            tflops(p, r.result.median_ms).c_str(),
                            format("%.3f", r.kernel_ms).c_str(), tflops(p, r.kernel_ms).c_str(),
                            r.kernel_ms > 0 ? format("%.3f", r.quant_ms).c_str() : "-",
                            r.kernel_ms > 0
                                ? format("%.1f", 100.0 * r.quant_ms / (r.quant_ms + r.kernel_ms)).c_str()
                                : "-")
                  << std::flush;
        rows.push_back({to_string(mode), p.flops() / (r.result.median_ms * 1e-3) / 1e12,
                        r.kernel_ms > 0 ? p.flops() / (r.kernel_ms * 1e-3) / 1e12 : 0.0, m.cos,
                        m.rel_l1});
      }
      continue;
    }
#endif
    const auto start = std::chrono::steady_clock::now();
    const std::vector<double> ref = exact_reference(p, t);
    const double ref_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::cout << format(kRowFormat, "exact_fp64", "-", "-", "-", "-",
                        format("%.3f", ref_ms).c_str(), gflops(p, ref_ms).c_str())
              << std::flush;
    for (PvMode mode : modes) {
      const ModeResult r = run_mode(p, t, mode, setup.warmup, setup.iters, ref);
      const cpu::ErrorMetrics& m = r.metrics;
      std::cout << format(kRowFormat, to_string(mode), format("%.7f", m.cos).c_str(),
                          format("%.6f", m.rel_l1).c_str(), format("%.3e", m.rmse).c_str(),
                          format("%.3e", m.max_abs).c_str(), format("%.3f", r.median_ms).c_str(),
                          gflops(p, r.median_ms).c_str());
      if (m.nonfinite_mismatch)
        std::cout << "  warning: " << m.nonfinite_mismatch << " NaN/Inf position(s) of "
                  << to_string(mode) << " differ from the reference\n";
      std::cout << std::flush;
      rows.push_back({to_string(mode),
                      r.median_ms > 0 ? p.flops() / (r.median_ms * 1e-3) / 1e12 : 0.0, 0.0, m.cos,
                      m.rel_l1});
    }
  }
  if (csv) {
    write_csv(*csv, csv_header, p, setup.gpu, rows);
    std::cout << "\nappended " << rows.size() << " row(s) to " << *csv << "\n";
  }
  return 0;
}

}  // namespace sageattn::cli
