"""The performance report, `python -m sageattn.bench` (docs/PERFORMANCE.md): its command line, the
CSV files of DESIGN.md §3, the plots (valid, non-blank PNG files from the built-in renderer, which
needs only numpy), the tables, and a sweep that refuses cleanly without torch or a GPU. Runs
everywhere; the sweep itself runs on the CPU with torch's CUDA calls stubbed out where torch is
installed without a GPU, and for real on a GPU."""

from __future__ import annotations

import contextlib
import math
import struct
import subprocess
import sys
import time
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from sageattn import _png, _report, bench

from conftest import OUTLIER_CHANNELS, OUTLIER_SCALE, K_BIAS_STD, V_BIAS_STD, REPO, cuda_or_skip, have

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FP8_RED = _report.series_color(("sageattn", "fp8"))
FLASH_BLUE = _report.series_color(("sdpa_flash", "bf16"))
MAX_DOC_PNG_BYTES = 150_000


def gpu_present() -> bool:
    if not have("torch"):
        return False
    import torch
    return torch.cuda.is_available()


# ---- a PNG reader for the checks (8-bit RGB, filters None / Sub / Up: what _png writes) ----

def png_chunks(data: bytes):
    assert data[:8] == PNG_SIGNATURE, "bad PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(tag + body) & 0xFFFFFFFF == crc, f"bad CRC in chunk {tag!r}"
        chunks.append((tag, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", [c[0] for c in chunks]
    return chunks


def png_header(path):
    """(width, height, bit depth, color type, interlace) of a PNG file."""
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", png_chunks(Path(path).read_bytes())[0][1])
    return width, height, depth, color, interlace


def read_rgb_png(path) -> np.ndarray:
    chunks = png_chunks(Path(path).read_bytes())
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, interlace) == (8, 2, 0), "expected 8-bit RGB, not interlaced"
    raw = np.frombuffer(zlib.decompress(b"".join(b for t, b in chunks if t == b"IDAT")), np.uint8)
    assert raw.size == height * (1 + 3 * width), "IDAT size does not match IHDR"
    rows = raw.reshape(height, 1 + 3 * width)
    out = np.zeros((height, 3 * width), np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            out[y] = line
        elif kind == 1:
            out[y] = (np.cumsum(line.reshape(width, 3).astype(np.int64), axis=0) % 256).reshape(-1)
        elif kind == 2:
            out[y] = line + (out[y - 1] if y else 0)
        else:
            raise AssertionError(f"row {y}: filter type {kind} (this reader knows 0, 1, 2)")
    return out.reshape(height, width, 3)


def count_color(rgb: np.ndarray, color) -> int:
    return int(np.all(rgb == np.array(color, np.uint8), axis=-1).sum())


# ---- synthetic CSV files ----

HDS, CAUSALS, SEQLENS = (64, 128), (0, 1), (1024, 4096, 16384)


def synthetic_results():
    rows = []
    for hd in HDS:
        for causal in CAUSALS:
            for i, n in enumerate(SEQLENS):
                batch = bench.TOKENS // n
                rows.append(bench.Result("sageattn", "fp16", hd, causal, n, batch, 32, 200.0 + 100 * i, 240.0 + 100 * i,
                                         0.99992, 0.0121))
                rows.append(bench.Result("sageattn", "fp8", hd, causal, n, batch, 32, 220.0 + 150 * i, 260.0 + 150 * i,
                                         0.99927, 0.0381))
                rows.append(bench.Result("sdpa_flash", "bf16", hd, causal, n, batch, 32, 330.0 + 5 * i, None,
                                         0.999997, 0.0022))
                rows.append(bench.Result("sdpa_cudnn", "bf16", hd, causal, n, batch, 32, 550.0 + 20 * i, None,
                                         0.999997, 0.0022))
    return rows


def synthetic_accuracy():
    rows = []
    for family, factor in (("gaussian", 1.0), ("k_channel_bias", 0.97), ("outliers", 0.6)):
        for hd in HDS:
            for impl, mode, cos, rel in (("sageattn", "fp16", 0.99992, 0.0121), ("sageattn", "fp8", 0.99927, 0.0381),
                                         ("sdpa_flash", "bf16", 0.999997, 0.0022)):
                rows.append(bench.Accuracy(impl, mode, family, hd, 0, 1024, 32, 32, 1 - (1 - cos) * factor,
                                           rel * factor, 1e-3, 1e-2))
    return rows


@pytest.fixture()
def csv_files(tmp_path):
    results = bench.CsvFile(str(tmp_path / "h100-2026-01-01.csv"), bench.HEADER)
    results.append(synthetic_results())
    accuracy = bench.CsvFile(bench.accuracy_path(results.path), bench.ACCURACY_HEADER)
    accuracy.append(synthetic_accuracy())
    return results.path, accuracy.path


# ---- the command line ----

def test_defaults_are_the_standard_grid_of_design_md():
    args = bench.parse_args(["--sweep"])
    assert args.hd == [64, 128] and args.causal == [0, 1]
    assert args.seqlens == [1024, 2048, 4096, 8192, 16384, 32768]
    assert args.modes == ["fp16", "fp8"]
    assert args.families == ["gaussian", "k_channel_bias", "outliers"]
    assert args.impls == ["sageattn", "sdpa_flash", "sdpa_cudnn", "sdpa_efficient", "sageattention"]
    assert (args.heads, args.tokens, args.warmup, args.iters, args.reps) == (32, 32768, 3, 10, 0)
    assert args.out == "sageattn-bench" and not args.no_plots


def test_lists_take_commas_or_spaces_and_quick_gives_way_to_explicit_values():
    args = bench.parse_args(["--sweep", "--hd", "64,128", "--seqlens", "1024", "2048,4096", "--causal", "1",
                             "--modes", "fp8", "--impls", "sageattn-sm90,sdpa_cudnn"])
    assert args.hd == [64, 128] and args.seqlens == [1024, 2048, 4096] and args.causal == [1]
    assert args.modes == ["fp8"] and args.impls == ["sageattn-sm90", "sdpa_cudnn"]
    quick = bench.parse_args(["--sweep", "--quick"])
    assert (quick.hd, quick.seqlens, quick.causal, quick.warmup, quick.iters) == ([128], [1024, 4096], [0, 1], 1, 3)
    mixed = bench.parse_args(["--sweep", "--quick", "--hd", "64", "--iters", "7"])
    assert mixed.hd == [64] and mixed.seqlens == [1024, 4096] and mixed.iters == 7


def test_gaussian_is_always_measured_first():
    assert bench.parse_args(["--sweep", "--families", "outliers"]).families == ["gaussian", "outliers"]
    assert bench.parse_args(["--sweep", "--families", "outliers,gaussian"]).families == ["gaussian", "outliers"]


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --sweep --plot is required"),
    (["--sweep", "--plot", "x.csv"], "not allowed with"),
    (["--sweep", "--hd", "63"], "--hd: 63 is not a multiple of 8"),
    (["--sweep", "--hd", "x"], "--hd: 'x' is not an integer"),
    (["--sweep", "--seqlens", "0"], "--seqlens: 0 is not positive"),
    (["--sweep", "--causal", "2"], "--causal: 2 is not 0 or 1"),
    (["--sweep", "--modes", "int4"], "--modes: unknown 'int4'"),
    (["--sweep", "--families", "uniform"], "--families: unknown 'uniform'"),
    (["--sweep", "--impls", "flashinfer"], "--impls: unknown 'flashinfer'"),
    (["--sweep", "--iters", "0"], "--iters: 0 is below 1"),
    (["--plot", "a.csv", "--plot-backend", "svg"], "invalid choice"),
])
def test_bad_command_lines_exit_2_naming_the_value(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


# ---- CSV files ----

def test_csv_header_is_the_one_of_design_md_and_rows_round_trip(tmp_path):
    design = (REPO.parent / "shared" / "DESIGN.md")
    if design.exists():
        assert f"`{bench.HEADER}`" in design.read_text()
    path = str(tmp_path / "r.csv")
    rows = synthetic_results()[:4]
    f = bench.CsvFile(path, bench.HEADER)
    f.append(rows[:2])
    bench.CsvFile(path, bench.HEADER).append(rows[2:])  # appends to an existing file, one header
    text = Path(path).read_text().splitlines()
    assert text[0] == bench.HEADER and text.count(bench.HEADER) == 1 and len(text) == 5
    assert text[3] == "sdpa_flash,bf16,64,0,1024,32,32,330,,0.99999700,0.0022"
    kind, back = bench.read_csv(path)
    assert kind == "results" and back == rows


def test_the_committed_results_files_read_back():
    # DESIGN.md §3: every CSV file in bench/results has the results header; the sweep's per-family
    # accuracy files live in bench/results/accuracy/.
    paths = sorted((REPO / "bench" / "results").glob("*.csv"))
    assert paths
    for path in paths:
        kind, rows = bench.read_csv(path)
        assert kind == "results" and rows, path
    for path in sorted((REPO / "bench" / "results" / "accuracy").glob("*.csv")):
        kind, rows = bench.read_csv(path)
        assert kind == "accuracy" and rows, path
        assert (REPO / "bench" / "results" / path.name).exists(), f"{path} has no results file"


def test_source_fingerprint_names_the_sources_not_the_rest(tmp_path):
    # A fake checkout: the fingerprint follows the sources' paths and bytes, and nothing else.
    for rel, text in {"CMakeLists.txt": "project(x)\n", "include/sageattn/a.h": "int a;\n",
                      "src/k.cu": "__global__ void k() {}\n", "python/sageattn/m.py": "x = 1\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    first = bench.source_fingerprint(str(tmp_path))
    assert len(first) == 12 and int(first, 16) >= 0
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "NOTES.md").write_text("notes\n")  # not a source
    (tmp_path / "python" / "sageattn" / "__pycache__").mkdir()
    (tmp_path / "python" / "sageattn" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    assert bench.source_fingerprint(str(tmp_path)) == first
    (tmp_path / "src" / "k.cu").write_text("__global__ void k() { }\n")  # one byte more
    changed = bench.source_fingerprint(str(tmp_path))
    assert changed != first
    (tmp_path / "src" / "k.cu").rename(tmp_path / "src" / "k2.cu")  # same bytes, another name
    assert bench.source_fingerprint(str(tmp_path)) not in (first, changed)
    assert bench.source_fingerprint(str(tmp_path / "bench")) == "?"  # not a checkout
    # The repository itself hashes, and the same way twice.
    assert bench.source_fingerprint(str(REPO)) == bench.source_fingerprint(str(REPO)) != "?"


def test_a_file_with_another_header_is_refused_before_anything_runs(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(bench.BenchError, match="exists and starts with 'a,b,c'"):
        bench.CsvFile(str(other), bench.HEADER)
    with pytest.raises(bench.BenchError, match="expected 'impl,mode,hd"):
        bench.read_csv(str(other))
    assert bench.main(["--plot", str(other), "--out", str(tmp_path / "out")]) == 2
    short = tmp_path / "short.csv"
    short.write_text(bench.HEADER + "\nsageattn,fp8,128\n")
    with pytest.raises(bench.BenchError, match="line 2: 3 fields"):
        bench.read_csv(str(short))


def test_file_names_flops_and_gpu_tags(tmp_path):
    assert bench.gpu_tag("NVIDIA H100 80GB HBM3") == "h100"
    assert bench.gpu_tag("NVIDIA H200") == "h200"
    assert bench.gpu_tag("NVIDIA A100-SXM4-80GB") == "a100"
    assert bench.gpu_tag("Some Accelerator") == "some-accelerator"
    first = bench.results_path(str(tmp_path), "h200", "2026-12-01")
    assert first.endswith("h200-2026-12-01.csv")
    Path(first).write_text(bench.HEADER + "\n")
    assert bench.results_path(str(tmp_path), "h200", "2026-12-01").endswith("h200-2026-12-01b.csv")
    assert bench.accuracy_path(first) == str(tmp_path / "accuracy" / "h200-2026-12-01.csv")
    assert bench.flops(32, 32, 1024, 128, 0) == 4.0 * 32 * 32 * 1024 * 1024 * 128
    assert bench.flops(32, 32, 1024, 128, 1) == bench.flops(32, 32, 1024, 128, 0) / 2


def test_input_families_are_the_ones_of_the_cpu_generator():
    assert (bench.OUTLIER_CHANNELS, bench.OUTLIER_SCALE, bench.K_BIAS_STD, bench.V_BIAS_STD) == (
        OUTLIER_CHANNELS, OUTLIER_SCALE, K_BIAS_STD, V_BIAS_STD)
    assert bench.FAMILIES == ("gaussian", "k_channel_bias", "outliers")


# ---- the PNG writer ----

def test_png_encoder_round_trips_exactly(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    rgb[10:20] = 255  # flat rows too
    path = tmp_path / "x.png"
    path.write_bytes(_png.encode_png(rgb))
    assert png_header(path) == (53, 37, 8, 2, 0)
    np.testing.assert_array_equal(read_rgb_png(path), rgb)


def test_canvas_draws_lines_dashes_discs_and_text(tmp_path):
    c = _png.Canvas(200, 100)
    c.polyline([(10, 20), (190, 20)], (255, 0, 0), width=3)
    c.polyline([(10, 60), (190, 60)], (0, 0, 255), width=3, dash=(10, 10))
    c.disc(100, 85, 6, (0, 128, 0))
    c.text(5, 30, "TFLOPS 1K", (0, 0, 0), scale=2)
    rgb = c.rgb()
    assert count_color(rgb[18:23], (255, 0, 0)) >= 2 * 170  # a solid line, about 3 px wide
    blue = np.all(rgb[59:62] == (0, 0, 255), axis=-1).any(axis=0)
    assert 60 <= blue.sum() <= 120, blue.sum()  # half of the length is drawn
    assert count_color(rgb, (0, 128, 0)) >= 80
    assert count_color(rgb[30:50], (0, 0, 0)) >= 100
    assert _png.text_size("TFLOPS 1K", 2) == ((9 * 6 - 1) * 2, 14)
    c.save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_rgb_png(tmp_path / "c.png"), rgb)


# ---- plots and tables ----

def test_plot_writes_valid_non_blank_pngs_and_the_tables(csv_files, tmp_path):
    results_csv, _ = csv_files
    out = tmp_path / "report"
    assert bench.main(["--plot", results_csv, "--out", str(out), "--plot-backend", "builtin"]) == 0
    stem = "h100-2026-01-01"
    tflops, accuracy, summary = out / f"{stem}-tflops.png", out / f"{stem}-accuracy.png", out / f"{stem}-summary.md"
    for png in (tflops, accuracy):
        width, height, depth, color, interlace = png_header(png)
        assert (depth, color, interlace) == (8, 2, 0)
        assert 1000 <= width <= 2000 and 600 <= height <= 1400, (png, width, height)
        assert png.stat().st_size < MAX_DOC_PNG_BYTES
        rgb = read_rgb_png(png)
        assert count_color(rgb, (255, 255, 255)) > 0.5 * width * height  # a white background ...
        assert count_color(rgb, FP8_RED) > 300, png                     # ... with sageattn fp8 drawn
        assert count_color(rgb, FLASH_BLUE) > 300, png                  # ... and SDPA flash
    # 2 x 2 panels of 500 x 280 pixels: each (hd, causal) panel has lines in its own area.
    rgb = read_rgb_png(tflops)
    h, w = rgb.shape[:2]
    for quadrant in (rgb[:h // 2, :w // 2], rgb[:h // 2, w // 2:], rgb[h // 2:, :w // 2], rgb[h // 2:, w // 2:]):
        assert count_color(quadrant, FP8_RED) > 50
    text = summary.read_text()
    assert "| hd | causal | N | sageattn fp16 | sageattn fp8 | SDPA flash (FA2) | SDPA cuDNN |" in text
    assert "| 128 | 1 | 16384 | 400 (440) | 520 (560) | 340 | 590 |" in text
    assert "| outliers | 128 | 0.999952 / 0.0073 |" in text  # from the sibling accuracy file, found by name


def test_accuracy_from_the_results_file_alone_is_the_gaussian_family(tmp_path):
    path = tmp_path / "only.csv"
    bench.CsvFile(str(path), bench.HEADER).append(synthetic_results())
    results, accuracy, files = bench.load_csvs([str(path)])
    assert not accuracy and files == [str(path)]
    table = _report.accuracy_table(results, accuracy)
    assert {k[0] for k in table} == {"gaussian"}
    assert table[("gaussian", 128, ("sageattn", "fp8"))] == {"cos": 0.99927, "rel_l1": 0.0381}
    fig = _report.accuracy_figure(results, accuracy, "t")
    assert [p.title for p in fig.panels] == ["relative L1 error, hd 64", "relative L1 error, hd 128",
                                             "1 - cos, hd 64", "1 - cos, hd 128"]
    assert fig.panels[2].ylog and fig.panels[2].groups == ["gaussian"]


def test_tflops_figure_has_a_panel_per_head_dim_and_causal_mode(csv_files):
    results, _, _ = bench.load_csvs([csv_files[0]])
    fig = _report.tflops_figure(results, "t")
    assert [p.title for p in fig.panels] == ["hd 64, non-causal", "hd 64, causal", "hd 128, non-causal",
                                             "hd 128, causal"]
    labels = [line.label for line in fig.panels[0].lines]
    assert labels == ["sageattn fp16", "sageattn fp16 kernel-only", "sageattn fp8", "sageattn fp8 kernel-only",
                      "SDPA flash (FA2)", "SDPA cuDNN"]
    assert [line.dashed for line in fig.panels[0].lines] == [False, True, False, True, False, False]
    assert fig.panels[0].lines[2].xs == list(SEQLENS) and fig.panels[0].xticks[0] == (1024, "1K")


def test_plot_entry_point_runs_as_a_module(csv_files, tmp_path):
    r = subprocess.run([sys.executable, "-m", "sageattn.bench", "--plot", *csv_files, "--out", str(tmp_path),
                        "--plot-backend", "builtin"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [Path(p).name for p in r.stdout.split()] == ["h100-2026-01-01-tflops.png", "h100-2026-01-01-accuracy.png",
                                                        "h100-2026-01-01-summary.md"]


def test_matplotlib_backend_writes_a_png(csv_files, tmp_path):
    if not _report.matplotlib_available():
        pytest.skip("matplotlib is not installed (the built-in renderer is tested above)")
    assert bench.main(["--plot", csv_files[0], "--out", str(tmp_path), "--plot-backend", "matplotlib"]) == 0
    width, height, depth, _, _ = png_header(tmp_path / "h100-2026-01-01-tflops.png")
    assert width > 500 and height > 400 and depth == 8


def test_performance_doc_shows_committed_small_pngs():
    doc = (REPO / "docs" / "PERFORMANCE.md").read_text()
    images = [line.split("](", 1)[1].split(")", 1)[0] for line in doc.splitlines() if line.startswith("![")]
    assert len(images) >= 2, "docs/PERFORMANCE.md embeds no plots"
    for image in images:
        path = REPO / "docs" / image
        assert path.exists(), image
        assert path.stat().st_size < MAX_DOC_PNG_BYTES, (image, path.stat().st_size)
        png_chunks(path.read_bytes())
    assert "python -m sageattn.bench --sweep" in doc
    assert "docs/PERFORMANCE.md" in (REPO / "README.md").read_text()


# ---- the sweep ----

def test_sweep_refuses_cleanly_without_a_gpu(tmp_path):
    if gpu_present():
        pytest.skip("a GPU is present: test_sweep_on_the_gpu runs the sweep")
    r = subprocess.run([sys.executable, "-m", "sageattn.bench", "--sweep", "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert "python -m sageattn.bench: error: --sweep needs " in r.stderr, r.stderr
    assert not list(tmp_path.iterdir()), "nothing is written when the sweep cannot run"


def test_peers_script_still_runs_through_the_sweep(tmp_path):
    if gpu_present():
        pytest.skip("a GPU is present: bench/peers.py would time the whole grid")
    r = subprocess.run([sys.executable, str(REPO / "bench" / "peers.py"), "--csv", str(tmp_path / "p.csv")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "bench/peers.py: error: --sweep needs " in r.stderr, r.stderr


def test_sweep_messages_without_torch_or_without_cuda(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    assert bench.main(["--sweep", "--out", str(tmp_path)]) == 2
    assert "torch is not importable" in capsys.readouterr().err
    fake = types.ModuleType("torch")
    fake.__version__ = "9.9"
    fake.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert bench.main(["--sweep", "--out", str(tmp_path)]) == 2
    assert "needs a CUDA GPU: torch 9.9 sees none" in capsys.readouterr().err


class _FakeEvent:
    def __init__(self, enable_timing=False):
        self.t = 0.0

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return (other.t - self.t) * 1e3


class _VirtualGpu:
    """A host and a GPU on virtual clocks (ms): each call costs the host `host` and the GPU `gpu`;
    the GPU starts a call when the host has enqueued it and the previous one finished. Events take
    the time at which the GPU reaches them; synchronize moves the host up to that time."""

    def __init__(self, host, gpu):
        self.host_cost, self.gpu_cost, self.host, self.gpu, self.syncs, self.calls = host, gpu, 0.0, 0.0, [], 0

    def call(self, *args):
        self.calls += 1
        self.host += self.host_cost
        self.gpu = max(self.gpu, self.host) + self.gpu_cost

    def event(self, enable_timing=False):
        vg = self

        class Event:
            def record(self, stream=None):
                self.t = max(vg.gpu, vg.host)

            def synchronize(self):
                vg.syncs.append(vg.calls)  # calls enqueued before the wait
                vg.host = max(vg.host, self.t)

            def elapsed_time(self, other):
                return other.t - self.t
        return Event()


@pytest.mark.parametrize("reps", [1, 0])
def test_timing_enqueues_every_sample_before_waiting(monkeypatch, reps):
    """The timed samples run back to back on the GPU (the host is ahead), so a call's Python
    dispatch is not counted as GPU time; the host's own time per call comes back separately."""
    vg = _VirtualGpu(host=0.25, gpu=1.5)
    stream = types.SimpleNamespace(wait_stream=lambda other: None)
    cuda = types.SimpleNamespace(Event=vg.event, stream=lambda s: contextlib.nullcontext(),
                                 current_stream=lambda *a: stream)
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=lambda: vg.host / 1e3))
    impl = bench._Impl("sageattn", "fp8", vg.call, contextlib.nullcontext)
    ms, used_reps, host_ms = bench.time_ms(types.SimpleNamespace(cuda=cuda), stream, impl, None, None, None, 0,
                                           warmup=2, iters=5, reps=reps)
    assert used_reps == (1 if reps == 1 else math.ceil(bench.AUTO_SAMPLE_MS / 1.5))
    assert ms == pytest.approx(1.5)  # waiting after each sample would give 1.75
    assert host_ms == pytest.approx(0.25)
    # One wait after all the samples (and, for reps = 0, one after the calibration call).
    total = 2 + (0 if reps else 1) + 5 * used_reps
    assert vg.syncs == ([] if reps else [3]) + [total]


def test_sweep_flow_on_the_cpu_with_cuda_stubbed(monkeypatch, tmp_path, capsys):
    """The whole sweep (inputs, accuracy, timing, CSV files, progress, plots) with torch's CUDA
    calls stubbed and the tensors on the host: sageattn runs its CPU backend, SDPA its CPU kernels."""
    if not have("torch"):
        pytest.skip("torch is not installed")
    if gpu_present():
        pytest.skip("a GPU is present: test_sweep_on_the_gpu runs the real sweep")
    import torch
    import sageattn
    if sageattn.TORCH_ERROR:
        pytest.skip(sageattn.TORCH_ERROR)
    stream = types.SimpleNamespace(wait_stream=lambda other: None)
    for name, value in dict(is_available=lambda: True, get_device_name=lambda *a: "NVIDIA H200",
                            get_device_capability=lambda *a: (9, 0), Stream=lambda: stream,
                            stream=lambda s: contextlib.nullcontext(), current_stream=lambda *a: stream,
                            Event=_FakeEvent, synchronize=lambda *a: None, empty_cache=lambda *a: None).items():
        monkeypatch.setattr(torch.cuda, name, value)
    monkeypatch.setattr(sageattn, "CUDA_BUILD", True)
    monkeypatch.setattr(sageattn, "gpu_available", lambda: True)
    real_inputs = bench.make_inputs
    monkeypatch.setattr(bench, "make_inputs", lambda *a, **k: real_inputs(*a, **k, device="cpu"))
    assert bench.main(["--sweep", "--out", str(tmp_path), "--hd", "64", "--seqlens", "128,256", "--causal", "0,1",
                       "--heads", "2", "--tokens", "512", "--warmup", "1", "--iters", "2",
                       "--impls", "sageattn,sdpa_flash", "--plot-backend", "builtin"]) == 0
    err = capsys.readouterr().err
    assert "[1/4] hd64 non-causal N=128 B=4: sageattn fp16 " in err and "[4/4] hd64 causal N=256 B=2" in err
    (results_csv,) = tmp_path.glob("h200-*.csv")
    kind, rows = bench.read_csv(results_csv)
    sage = [r for r in rows if r.impl == "sageattn"]
    expected = {(m, c, n) for m in ("fp16", "fp8") for c in (0, 1) for n in (128, 256)}
    assert {(r.mode, r.causal, r.seqlen) for r in sage} == expected
    for r in sage:
        assert r.e2e_tflops > 0 and r.kernel_tflops is None and r.cos > 0.998 and r.rel_l1 < 0.05, r
    kind, acc = bench.read_csv(bench.accuracy_path(str(results_csv)))
    assert kind == "accuracy" and {r.family for r in acc} == set(bench.FAMILIES)
    stem = results_csv.stem
    assert (tmp_path / f"{stem}-tflops.png").exists() and (tmp_path / f"{stem}-accuracy.png").exists()


def test_sweep_on_the_gpu(tmp_path, capsys):
    cuda_or_skip()
    assert bench.main(["--sweep", "--out", str(tmp_path), "--hd", "64", "--seqlens", "256", "--causal", "0,1",
                       "--heads", "4", "--tokens", "1024", "--warmup", "1", "--iters", "3",
                       "--impls", "sageattn,sdpa_flash", "--plot-backend", "builtin"]) == 0
    err = capsys.readouterr().err
    assert "[2/2] hd64 causal N=256 B=4" in err, err
    (results_csv,) = tmp_path.glob("*.csv")
    _, rows = bench.read_csv(results_csv)
    assert {r.impl for r in rows} == {"sageattn", "sdpa_flash"}, rows
    for r in rows:
        assert r.e2e_tflops > 0 and r.cos > 0.998, r
