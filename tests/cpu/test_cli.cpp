// tests/cpu/test_cli.cpp: the `sageattn` command-line program end to end, and its .npy reader.
//
// Runs the built program (SAGEATTN_CLI_PATH) through the shell and checks exit codes and output:
// --help texts, `bench` on small CPU problems (accuracy parsed from its table, the CSV format),
// `check` on .npy files this test writes, and every documented error case (exit code 2 with a
// message naming the problem). The npy tests write v1 headers with save_npy and v2/v3 headers,
// integer and Fortran-order files by hand. Everything runs on the CPU backend in a few seconds.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/numerics.h"
#include "cpu/inputs.h"
#include "npy.h"
#include "sageattn/attention.h"

namespace {

namespace fs = std::filesystem;
using sageattn::npy::load_npy;
using sageattn::npy::save_npy;

struct RunResult {
  int code = -1;
  std::string output;  // stdout and stderr together
};

RunResult run_cli(const std::string& args) {
  const std::string cmd = std::string("'") + SAGEATTN_CLI_PATH + "' " + args + " 2>&1";
  RunResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

// The cos column (second field) of the table row whose first field is `mode`; NaN if absent.
double row_cos(const std::string& output, const std::string& mode) {
  for (const std::string& line : lines_of(output)) {
    std::istringstream is(line);
    std::string first, cos;
    if (is >> first >> cos && first == mode) return std::stod(cos);
  }
  return std::nan("");
}

const std::vector<std::string> kModes = {"fp16", "fp8", "fp8_fp16acc"};

// A fresh temporary directory per test, removed afterwards.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sageattn_test_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string quoted(const std::string& name) const { return "'" + path(name) + "'"; }

  // Writes q, k, v of a gaussian problem logical [B, H, N, D] as 4-D f32 (or 3-D when batch
  // is 1 and `three_d`), or f16 when `f16`.
  void write_qkv(int64_t batch, int64_t heads, int64_t tokens, int64_t dim, bool f16,
                 bool three_d = false) {
    const auto data = sageattn::cpu::make_inputs(sageattn::cpu::InputFamily::kGaussian, batch,
                                                 heads, heads, tokens, tokens, dim, 7);
    std::vector<int64_t> shape = {batch, heads, tokens, dim};
    if (three_d) shape.erase(shape.begin());
    const std::vector<float>* src[3] = {&data.q, &data.k, &data.v};
    const char* names[3] = {"q.npy", "k.npy", "v.npy"};
    for (int i = 0; i < 3; ++i) {
      if (f16) {
        std::vector<uint16_t> bits(src[i]->size());
        for (std::size_t j = 0; j < bits.size(); ++j)
          bits[j] = sageattn::num::fp16_from_float((*src[i])[j]);
        sageattn::npy::save_npy_f16(path(names[i]), shape, bits.data());
      } else {
        save_npy(path(names[i]), shape, src[i]->data());
      }
    }
  }

  // A .npy file with a hand-written header dict and raw payload bytes.
  void write_raw_npy(const std::string& name, int major, const std::string& dict,
                     const std::string& payload) {
    std::string header = dict;
    const std::size_t prefix = 6 + 2 + (major == 1 ? 2 : 4);
    while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
    header.push_back('\n');
    std::string file = "\x93NUMPY";
    file.push_back(static_cast<char>(major));
    file.push_back(0);
    const std::size_t len = header.size();
    for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
      file.push_back(static_cast<char>((len >> (8 * i)) & 0xFF));
    file += header + payload;
    std::ofstream(path(name), std::ios::binary) << file;
  }

  fs::path dir_;
};

// ---------------------------------------------------------------- help, version

TEST_F(CliTest, TopLevelHelpListsCommands) {
  const RunResult r = run_cli("--help");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "bench")) << r.output;
  EXPECT_TRUE(contains(r.output, "check")) << r.output;
  EXPECT_TRUE(contains(r.output, "--version")) << r.output;

  const RunResult v = run_cli("--version");
  EXPECT_EQ(v.code, 0) << v.output;
  EXPECT_TRUE(contains(v.output, sageattn::version())) << v.output;
}

TEST_F(CliTest, BenchHelpListsEveryOptionWithDefaults) {
  const RunResult r = run_cli("bench --help");
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* opt :
       {"--batch",    "--heads",       "--heads-kv",    "--seqlen",   "--seqlen-k",
        "--head-dim", "--causal",      "--layout",      "--dtype",    "--family",
        "--modes",    "--granularity", "--no-smooth-k", "--smooth-v", "--device",
        "--iters",    "--warmup",      "--seed",        "--csv",      "--help"})
    EXPECT_TRUE(contains(r.output, opt)) << opt << " missing from:\n" << r.output;
  EXPECT_TRUE(contains(r.output, "(default: 128)")) << r.output;
  EXPECT_TRUE(contains(r.output, "(default: bf16)")) << r.output;
  EXPECT_TRUE(contains(r.output, "(default: per_warp)")) << r.output;
}

TEST_F(CliTest, CheckHelpListsEveryOption) {
  const RunResult r = run_cli("check --help");
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* opt : {"q.npy", "--causal", "--layout", "--scale", "--dtype", "--modes",
                          "--granularity", "--no-smooth-k", "--smooth-v", "<f2", "<f4", "<f8"})
    EXPECT_TRUE(contains(r.output, opt)) << opt << " missing from:\n" << r.output;
}

// ---------------------------------------------------------------- bench

TEST_F(CliTest, BenchSmallProblemPrintsAccurateRowPerMode) {
  const RunResult r =
      run_cli("bench --device cpu --seqlen 200 --heads 2 --head-dim 64 --iters 1 --warmup 0");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "CPU backend")) << r.output;
  EXPECT_TRUE(contains(r.output, "seqlen 200")) << r.output;
  EXPECT_TRUE(contains(r.output, "exact_fp64")) << r.output;
  for (const std::string& mode : kModes) EXPECT_GT(row_cos(r.output, mode), 0.99) << r.output;
}

TEST_F(CliTest, BenchAutoDeviceNamesTheBackend) {
  const RunResult r = run_cli(
      "bench --seqlen 64 --heads 1 --head-dim 32 --iters 1 --warmup 0 "
      "--modes fp8");
  ASSERT_EQ(r.code, 0) << r.output;
  if (contains(r.output, "device: auto -> gpu")) {
    // A CUDA build on a machine with a GPU: the GPU path, with e2e and kernel columns.
    EXPECT_TRUE(contains(r.output, "backend: gpu")) << r.output;
    EXPECT_TRUE(contains(r.output, "kern_TFLOPS")) << r.output;
    EXPECT_TRUE(contains(r.output, "quant%")) << r.output;
  } else {
    EXPECT_TRUE(contains(r.output, "device: auto -> cpu")) << r.output;
    EXPECT_TRUE(contains(r.output, "CPU backend")) << r.output;
  }
}

TEST_F(CliTest, BenchNhdCausalGqaAllFamilies) {
  const RunResult r = run_cli(
      "bench --device cpu --layout NHD --causal --heads 4 --heads-kv 2 --seqlen 96 "
      "--seqlen-k 160 --head-dim 64 --family all --granularity per_thread --iters 1 "
      "--warmup 0 --modes fp16,fp8");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* family : {"gaussian", "k_channel_bias", "outliers"})
    EXPECT_TRUE(contains(r.output, std::string("family: ") + family)) << r.output;
  int rows = 0;
  for (const std::string& line : lines_of(r.output)) {
    std::istringstream is(line);
    std::string first, cos;
    if (is >> first >> cos && (first == "fp16" || first == "fp8")) {
      ++rows;
      EXPECT_GT(std::stod(cos), 0.99) << line;
    }
  }
  EXPECT_EQ(rows, 6) << r.output;
}

TEST_F(CliTest, BenchCsvWritesExactHeaderAndAppendsRows) {
  const std::string args =
      "bench --device cpu --seqlen 128 --heads 2 --head-dim 64 --iters 1 "
      "--warmup 0 --causal --csv " +
      quoted("out.csv");
  ASSERT_EQ(run_cli(args).code, 0);
  const RunResult again = run_cli(args + " --modes fp8");
  ASSERT_EQ(again.code, 0) << again.output;

  std::ifstream in(path("out.csv"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u + 3u + 1u);  // one header, three modes, then one appended row
  EXPECT_EQ(lines[0], "impl,mode,hd,causal,seqlen,batch,heads,e2e_tflops,kernel_tflops,cos,rel_l1");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f;
    std::istringstream is(lines[i]);
    for (std::string field; std::getline(is, field, ',');) f.push_back(field);
    if (!lines[i].empty() && lines[i].back() == ',') f.push_back("");
    ASSERT_EQ(f.size(), 11u) << lines[i];
    EXPECT_EQ(f[0], "sageattn-cpu");
    EXPECT_EQ(f[1], i <= 3 ? kModes[i - 1] : "fp8");
    EXPECT_EQ(f[2], "64");
    EXPECT_EQ(f[3], "1");
    EXPECT_EQ(f[4], "128");
    EXPECT_EQ(f[5], "1");
    EXPECT_EQ(f[6], "2");
    EXPECT_GT(std::stod(f[7]), 0.0) << lines[i];
    EXPECT_EQ(f[8], "") << lines[i];
    EXPECT_GT(std::stod(f[9]), 0.99) << lines[i];
    EXPECT_LT(std::stod(f[10]), 0.1) << lines[i];
  }
}

// ---------------------------------------------------------------- check

TEST_F(CliTest, CheckF32FilesReportsEachMode) {
  write_qkv(2, 2, 150, 64, /*f16=*/false);
  const RunResult r = run_cli("check " + quoted("q.npy") + " " + quoted("k.npy") + " " +
                              quoted("v.npy") + " --causal");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "dtype: bf16")) << r.output;
  EXPECT_TRUE(contains(r.output, "computed from the values rounded to bf16")) << r.output;
  for (const std::string& mode : kModes) EXPECT_GT(row_cos(r.output, mode), 0.99) << r.output;
}

TEST_F(CliTest, CheckF16ThreeDimFilesDefaultToFp16) {
  write_qkv(1, 2, 130, 64, /*f16=*/true, /*three_d=*/true);
  const RunResult r = run_cli("check " + quoted("q.npy") + " " + quoted("k.npy") + " " +
                              quoted("v.npy") + " --layout HND --modes fp16,fp8_fp16acc");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "dtype: fp16")) << r.output;
  EXPECT_TRUE(contains(r.output, "rounding changed 0 q, 0 k, 0 v values")) << r.output;
  EXPECT_GT(row_cos(r.output, "fp16"), 0.99) << r.output;
  EXPECT_GT(row_cos(r.output, "fp8_fp16acc"), 0.99) << r.output;
  EXPECT_TRUE(std::isnan(row_cos(r.output, "fp8"))) << "fp8 was not requested:\n" << r.output;
}

TEST_F(CliTest, CheckShapeMismatchIsReportedWithValues) {
  write_qkv(1, 2, 64, 64, false);
  std::vector<float> k(1 * 2 * 64 * 32, 0.5f);
  save_npy(path("k32.npy"), {1, 2, 64, 32}, k.data());
  const RunResult r =
      run_cli("check " + quoted("q.npy") + " " + quoted("k32.npy") + " " + quoted("v.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "head_dim mismatch: q=64 k=32")) << r.output;
}

// ---------------------------------------------------------------- error cases: exit 2, named

TEST_F(CliTest, MissingFileNamesThePath) {
  write_qkv(1, 1, 16, 32, false);
  const RunResult r =
      run_cli("check " + quoted("q.npy") + " " + quoted("missing.npy") + " " + quoted("v.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, path("missing.npy"))) << r.output;
}

TEST_F(CliTest, IntegerArrayNamesTheDescr) {
  write_qkv(1, 1, 16, 32, false);
  write_raw_npy("i4.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 16, 32), }",
                std::string(16 * 32 * 4, '\0'));
  const RunResult r =
      run_cli("check " + quoted("i4.npy") + " " + quoted("k.npy") + " " + quoted("v.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "'<i4'")) << r.output;
  EXPECT_TRUE(contains(r.output, "i4.npy")) << r.output;
}

TEST_F(CliTest, Bfloat16VoidArrayExplainsFloat32) {
  write_qkv(1, 1, 16, 32, false);
  write_raw_npy("bf.npy", 1, "{'descr': '|V2', 'fortran_order': False, 'shape': (1, 1, 16, 32), }",
                std::string(16 * 32 * 2, '\0'));
  const RunResult r =
      run_cli("check " + quoted("q.npy") + " " + quoted("k.npy") + " " + quoted("bf.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "'|V2'")) << r.output;
  EXPECT_TRUE(contains(r.output, "float32")) << r.output;
}

TEST_F(CliTest, FortranOrderIsRejected) {
  write_qkv(1, 1, 16, 32, false);
  write_raw_npy("f.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1, 16, 32), }",
                std::string(16 * 32 * 4, '\0'));
  const RunResult r =
      run_cli("check " + quoted("q.npy") + " " + quoted("f.npy") + " " + quoted("v.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "fortran_order")) << r.output;
  EXPECT_TRUE(contains(r.output, "f.npy")) << r.output;
}

TEST_F(CliTest, WrongRankIsRejected) {
  write_qkv(1, 1, 16, 32, false);
  std::vector<float> q2(16 * 32, 1.0f);
  save_npy(path("q2d.npy"), {16, 32}, q2.data());
  const RunResult r =
      run_cli("check " + quoted("q2d.npy") + " " + quoted("k.npy") + " " + quoted("v.npy"));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "2-D")) << r.output;
  EXPECT_TRUE(contains(r.output, "(16, 32)")) << r.output;
}

TEST_F(CliTest, UnknownOptionIsOneLineWithHelpHint) {
  const RunResult r = run_cli("bench --bogus 3");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "'--bogus'")) << r.output;
  EXPECT_TRUE(contains(r.output, "--help")) << r.output;
  EXPECT_EQ(lines_of(r.output).size(), 1u) << r.output;

  const RunResult c = run_cli("frobnicate");
  EXPECT_EQ(c.code, 2) << c.output;
  EXPECT_TRUE(contains(c.output, "'frobnicate'")) << c.output;
}

TEST_F(CliTest, BadValuesNameTheValue) {
  const RunResult layout = run_cli("bench --layout XYZ");
  EXPECT_EQ(layout.code, 2) << layout.output;
  EXPECT_TRUE(contains(layout.output, "'XYZ'")) << layout.output;
  EXPECT_TRUE(contains(layout.output, "--layout")) << layout.output;
  EXPECT_EQ(lines_of(layout.output).size(), 1u) << layout.output;

  for (const char* args : {"bench --seqlen abc", "bench --modes fp8,int4", "bench --iters 0",
                           "check --granularity per_lane a b c", "bench --family uniform"}) {
    const RunResult r = run_cli(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_TRUE(contains(r.output, "--help")) << args << "\n" << r.output;
  }
  const RunResult hd = run_cli("bench --device cpu --head-dim 100 --seqlen 16");
  EXPECT_EQ(hd.code, 2) << hd.output;
  EXPECT_TRUE(contains(hd.output, "error: head_dim must be a multiple of 8")) << hd.output;
  EXPECT_TRUE(contains(hd.output, "got 100")) << hd.output;
}

TEST_F(CliTest, DeviceGpuWithoutGpuIsAnError) {
  // Whether this program can use a GPU here: its auto device line says so.
  const RunResult probe = run_cli("bench --seqlen 16 --heads 1 --head-dim 32 --iters 1 --warmup 0 --modes fp16");
  if (contains(probe.output, "device: auto -> gpu")) GTEST_SKIP() << "a GPU is usable here";
  const RunResult r = run_cli("bench --device gpu --seqlen 16 --heads 1 --head-dim 32");
  // Without a usable GPU it says why: exit 2 and nothing runs.
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_FALSE(contains(r.output, "exact_fp64")) << r.output;
  if (contains(run_cli("--version").output, "CPU-only build"))
    EXPECT_TRUE(contains(r.output, "--device gpu: no GPU backend in this build")) << r.output;
  else
    EXPECT_TRUE(contains(r.output, "--device gpu: no CUDA device found")) << r.output;
}

// ---------------------------------------------------------------- npy reader and writers

TEST_F(CliTest, NpyRoundTripShapesAndValues) {
  for (const std::vector<int64_t>& shape :
       std::vector<std::vector<int64_t>>{{2, 3, 4, 5}, {7}, {}, {0, 3}, {1, 1, 1}}) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> f(n);
    for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(i) * -0.37f + 1e-3f;
    save_npy(path("a.npy"), shape, f.data());
    const auto a = load_npy(path("a.npy"));
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.descr, "<f4");
    EXPECT_EQ(a.major_version, 1);
    ASSERT_EQ(static_cast<int64_t>(a.data.size()), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(a.data[i], static_cast<double>(f[i]));
    // NumPy's own invariant: magic + length + header is a multiple of 64 bytes.
    std::ifstream in(path("a.npy"), std::ios::binary);
    unsigned char pre[10];
    in.read(reinterpret_cast<char*>(pre), 10);
    EXPECT_EQ((10 + (pre[8] | (pre[9] << 8))) % 64, 0);
  }

  const std::vector<uint16_t> h = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000};
  sageattn::npy::save_npy_f16(path("h.npy"), {5}, h.data());
  const auto a = load_npy(path("h.npy"));
  EXPECT_EQ(a.descr, "<f2");
  EXPECT_EQ(a.data, (std::vector<double>{1.0, -2.0, 65504.0, std::ldexp(1.0, -24), -0.0}));

  const std::vector<double> d = {1.0 / 3.0, -1e300, 5e-324};
  sageattn::npy::save_npy_f64(path("d.npy"), {3, 1}, d.data());
  const auto b = load_npy(path("d.npy"));
  EXPECT_EQ(b.descr, "<f8");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(b.data, d);
}

TEST_F(CliTest, NpyReadsV2AndV3Headers) {
  std::string payload;
  const float vals[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-20f, 7.0f};
  for (float v : vals) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    for (int i = 0; i < 4; ++i) payload.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
  }
  // Key order and quoting vary between writers: NumPy sorts keys, others may not.
  write_raw_npy("v2.npy", 2, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", payload);
  write_raw_npy("v3.npy", 3, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (6,), }",
                payload);
  const auto a = load_npy(path("v2.npy"));
  EXPECT_EQ(a.major_version, 2);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  const auto b = load_npy(path("v3.npy"));
  EXPECT_EQ(b.major_version, 3);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{6}));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(a.data[i], static_cast<double>(vals[i]));
    EXPECT_EQ(b.data[i], static_cast<double>(vals[i]));
  }
}

TEST_F(CliTest, NpyErrorsNameThePathAndProblem) {
  auto expect_error = [&](const std::string& name, sageattn::ErrorCode code,
                          const std::string& what) {
    try {
      load_npy(path(name));
      ADD_FAILURE() << name << ": no error";
    } catch (const sageattn::Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_TRUE(contains(e.what(), path(name))) << e.what();
      EXPECT_TRUE(contains(e.what(), what)) << e.what();
    }
  };
  expect_error("absent.npy", sageattn::ErrorCode::kIoError, "cannot open");
  std::ofstream(path("text.npy")) << "hello";
  expect_error("text.npy", sageattn::ErrorCode::kInvalidArgument, "not a .npy file");
  write_raw_npy("short.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }",
                std::string(12, '\0'));
  expect_error("short.npy", sageattn::ErrorCode::kInvalidArgument, "truncated");
  write_raw_npy("be.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                std::string(4, '\0'));
  expect_error("be.npy", sageattn::ErrorCode::kInvalidArgument, "'>f4'");
  write_raw_npy("st.npy", 1,
                "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                std::string(8, '\0'));
  expect_error("st.npy", sageattn::ErrorCode::kInvalidArgument, "structured");
  write_raw_npy("ft.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                std::string(16, '\0'));
  expect_error("ft.npy", sageattn::ErrorCode::kInvalidArgument, "Fortran");
}

}  // namespace
