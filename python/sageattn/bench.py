"""Performance report of sageattn: the standard grid of DESIGN.md §3 with its peers, in one process.

    python -m sageattn.bench --sweep [--out DIR] [--hd 64,128] [--seqlens 1024,...,32768]
                             [--causal 0,1] [--modes fp16,fp8] [--families ...] [--impls ...]
                             [--cli SAGEATTN_BINARY] [--quick]
    python -m sageattn.bench --plot CSV [CSV ...] [--out DIR]

``--sweep`` (PyTorch and a CUDA GPU) times sageattn through its torch API (end to end: bf16 in and
out, every quantization step included) and torch's SDPA with the FLASH_ATTENTION,
CUDNN_ATTENTION and EFFICIENT_ATTENTION backends, plus the original ``sageattention`` package when
it is importable, on the same inputs in the same process. Per problem: inputs of each input
family; the first output of every implementation is checked against float64 attention on a
subset (batch 0, the first 4 heads, the last 512 query rows); the gaussian inputs are then timed
(CUDA events on a non-default stream, warm-up, median). Kernel-only times (the attention kernel
without the quantization passes) are not visible from Python: with ``--cli`` the built
``sageattn`` program measures them per problem (``sageattn bench --csv``) and they fill the
``kernel_tflops`` column. A progress line per problem goes to stderr.

Files written (DIR = ``--out``): ``<gpu>-<date>.csv`` (exactly the columns of DESIGN.md §3; the
accuracy columns are those of the gaussian family), ``accuracy/<stem>.csv`` (every family and
metric), and, as ``--plot`` makes them, ``<stem>-tflops.png``, ``<stem>-accuracy.png`` and
``<stem>-summary.md`` (the tables). ``--plot`` redraws them from CSV files measured elsewhere, on
any machine (matplotlib when importable, else a built-in PNG renderer).

docs/PERFORMANCE.md has the details. This module imports only the standard library at module
level (torch and sageattn when a sweep runs, the report modules when plotting), so bench/peers.py
can load it from the source tree where the package is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

# ---- what is measured (DESIGN.md §3) ----

HEADER = "impl,mode,hd,causal,seqlen,batch,heads,e2e_tflops,kernel_tflops,cos,rel_l1"
ACCURACY_HEADER = "impl,mode,family,hd,causal,seqlen,batch,heads,cos,rel_l1,rmse,max_abs"

STANDARD_HEAD_DIMS = (64, 128)
STANDARD_SEQLENS = (1024, 2048, 4096, 8192, 16384, 32768)
STANDARD_CAUSAL = (0, 1)
HEADS = 32
TOKENS = 32768           # batch = TOKENS // N: every problem holds the same number of tokens
MODES = ("fp16", "fp8", "fp8_fp16acc")
DEFAULT_MODES = ("fp16", "fp8")
FAMILIES = ("gaussian", "k_channel_bias", "outliers")

# CSV impl -> sageattn backend; the SDPA peers -> torch.nn.attention.SDPBackend member.
SAGEATTN_IMPLS = {"sageattn": "auto", "sageattn-sm80": "sm80", "sageattn-sm90": "sm90"}
SDPA_PEERS = {"sdpa_flash": "FLASH_ATTENTION", "sdpa_cudnn": "CUDNN_ATTENTION",
              "sdpa_efficient": "EFFICIENT_ATTENTION"}
ORIGINAL = "sageattention"  # the original SageAttention package, when importable
PEERS = (*SDPA_PEERS, ORIGINAL)
IMPLS = (*SAGEATTN_IMPLS, *PEERS)
DEFAULT_IMPLS = ("sageattn", *PEERS)

# The accuracy subset, as `sageattn bench` checks it: batch 0, these heads, the last rows.
CHECK_HEADS, CHECK_ROWS = 4, 512

# Input families (DESIGN.md §3), as src/cpu/inputs.cpp defines them.
OUTLIER_CHANNELS, OUTLIER_SCALE, K_BIAS_STD, V_BIAS_STD = 4, 10.0, 6.0, 3.0

# Timing: with --reps 0 (auto) each timed sample is as many back-to-back calls as make about
# this much GPU time, so that the host's per-call overhead hides behind the queued work.
AUTO_SAMPLE_MS, MAX_REPS = 2.0, 50
# A note names an implementation whose host dispatch per call reaches this share of its GPU time.
HOST_NOTE_FRACTION = 0.05

PROG = "python -m sageattn.bench"
QUICK = dict(hd=[128], seqlens=[1024, 4096], causal=[0, 1], warmup=1, iters=3)


class BenchError(Exception):
    """A condition that stops the command with a message and exit status 2 (no traceback)."""


class Result(NamedTuple):
    """One row of the results CSV (the columns of DESIGN.md §3)."""
    impl: str
    mode: str
    hd: int
    causal: int
    seqlen: int
    batch: int
    heads: int
    e2e_tflops: Optional[float]
    kernel_tflops: Optional[float]
    cos: Optional[float]
    rel_l1: Optional[float]


class Accuracy(NamedTuple):
    """One row of the accuracy CSV: one implementation on one input family of one problem."""
    impl: str
    mode: str
    family: str
    hd: int
    causal: int
    seqlen: int
    batch: int
    heads: int
    cos: Optional[float]
    rel_l1: Optional[float]
    rmse: Optional[float]
    max_abs: Optional[float]


assert ",".join(Result._fields) == HEADER and ",".join(Accuracy._fields) == ACCURACY_HEADER

_INT_FIELDS = {"hd", "causal", "seqlen", "batch", "heads"}
_TEXT_FIELDS = {"impl", "mode", "family"}
_FORMATS = {"cos": "{:.8f}"}  # other floats: 6 significant digits


def format_row(row) -> str:
    """A CSV line (no newline) of a Result or Accuracy; None becomes an empty field."""
    cells = []
    for name, value in zip(row._fields, row):
        if value is None:
            cells.append("")
        elif name in _INT_FIELDS or name in _TEXT_FIELDS:
            cells.append(str(value))
        else:
            cells.append(_FORMATS.get(name, "{:.6g}").format(value))
    return ",".join(cells)


def read_csv(path) -> Tuple[str, list]:
    """Reads a results CSV (DESIGN.md §3) or an accuracy CSV: ("results", [Result]) or
    ("accuracy", [Accuracy]). Raises BenchError naming the file and line on anything else."""
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except OSError as e:
        raise BenchError(f"cannot read '{path}': {e.strerror}") from None
    header = ",".join(lines[0]).strip() if lines else ""
    kinds = {HEADER: ("results", Result), ACCURACY_HEADER: ("accuracy", Accuracy)}
    if header not in kinds:
        raise BenchError(f"'{path}': first line is '{header}', expected '{HEADER}' (results) or "
                         f"'{ACCURACY_HEADER}' (accuracy)")
    kind, cls = kinds[header]
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if not cells:
            continue
        if len(cells) != len(cls._fields):
            raise BenchError(f"'{path}' line {number}: {len(cells)} fields, expected {len(cls._fields)}")
        try:
            rows.append(cls(*(_parse_cell(name, cell) for name, cell in zip(cls._fields, cells))))
        except ValueError as e:
            raise BenchError(f"'{path}' line {number}: {e}") from None
    return kind, rows


def _parse_cell(name: str, cell: str):
    cell = cell.strip()
    if name in _TEXT_FIELDS:
        return cell
    if name in _INT_FIELDS:
        return int(cell)
    return float(cell) if cell else None


class CsvFile:
    """A CSV file that rows are appended to. An existing file must start with ``header`` (checked
    when this is made, before anything runs); a new or empty one gets the header first."""

    def __init__(self, path: str, header: str):
        self.path, self.header = path, header
        self.rows = 0
        self.new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not self.new:
            with open(path) as f:
                first = f.readline().strip()
            if first != header:
                raise BenchError(f"'{path}' exists and starts with '{first}', not '{header}': "
                                 "choose another file")

    def append(self, rows: Sequence) -> None:
        if not rows:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a") as f:
            if self.new:
                f.write(self.header + "\n")
                self.new = False
            f.writelines(format_row(r) + "\n" for r in rows)
        self.rows += len(rows)


def flops(batch: int, heads: int, seqlen: int, hd: int, causal: int) -> float:
    """4 * B * H * Nq * Nk * D, halved for causal (DESIGN.md §3)."""
    return 4.0 * batch * heads * seqlen * seqlen * hd / (2 if causal else 1)


def gpu_tag(device_name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100' (the results file prefix); other names in lower case."""
    m = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", device_name)
    return (m.group(1) if m else re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-") or "gpu").lower()


def results_path(out_dir: str, tag: str, date: str) -> str:
    """``out_dir/<tag>-<date>.csv``, or with the first free suffix b, c, ... when it exists."""
    for suffix in [""] + [chr(c) for c in range(ord("b"), ord("z") + 1)]:
        path = os.path.join(out_dir, f"{tag}-{date}{suffix}.csv")
        if not os.path.exists(path):
            return path
    raise BenchError(f"no free results file name for {tag}-{date} in '{out_dir}'")


def accuracy_path(results_csv: str) -> str:
    """``DIR/<stem>.csv`` -> ``DIR/accuracy/<stem>.csv``: the accuracy file of a results file. A
    folder of its own, so that every CSV file beside the results (``bench/results/*.csv``) has
    DESIGN.md §3's header."""
    folder, name = os.path.split(results_csv)
    return os.path.join(folder, "accuracy", name)


# ---- the command line ----

def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="sageattn performance report: the standard grid of DESIGN.md §3 with torch's SDPA "
                    "backends and the sageattention package in one process (--sweep), or the plots "
                    "and tables of existing CSV files (--plot).",
        epilog="Lists take commas or spaces: --hd 64,128 or --hd 64 128. docs/PERFORMANCE.md has the details.")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--sweep", action="store_true", help="measure (needs PyTorch and a CUDA GPU)")
    what.add_argument("--plot", nargs="+", metavar="CSV",
                      help="plot and tabulate these results / accuracy CSV files (no GPU needed)")
    ap.add_argument("--out", default="sageattn-bench", metavar="DIR",
                    help="folder for the CSV files, plots and tables (default: %(default)s)")
    grid = ap.add_argument_group("sweep")
    grid.add_argument("--csv", metavar="FILE",
                      help="results file (appended to when it exists; default: DIR/<gpu>-<date>.csv)")
    grid.add_argument("--hd", nargs="+", metavar="D", help="head dims (default: 64,128)")
    grid.add_argument("--seqlens", nargs="+", metavar="N",
                      help="sequence lengths Nq = Nk (default: 1024,2048,...,32768)")
    grid.add_argument("--causal", nargs="+", metavar="C", help="0 and/or 1 (default: 0,1)")
    grid.add_argument("--modes", nargs="+", metavar="M", help="sageattn P.V modes (default: fp16,fp8)")
    grid.add_argument("--families", nargs="+", metavar="F",
                      help="input families of the accuracy check (default: all three; gaussian, "
                           "which is timed, is always included)")
    grid.add_argument("--impls", nargs="+", metavar="I",
                      help=f"implementations (default: {','.join(DEFAULT_IMPLS)}; also "
                           "sageattn-sm80, sageattn-sm90: a backend forced)")
    grid.add_argument("--heads", type=int, default=HEADS, help="heads (default: %(default)s)")
    grid.add_argument("--tokens", type=int, default=TOKENS,
                      help="batch = TOKENS / N (default: %(default)s)")
    grid.add_argument("--warmup", type=int, help="untimed calls first (default: 3; --quick 1)")
    grid.add_argument("--iters", type=int, help="timed samples, median reported (default: 10; --quick 3)")
    grid.add_argument("--reps", type=int, default=0,
                      help=f"calls per timed sample; 0: as many as take about {AUTO_SAMPLE_MS:g} ms "
                           "(default: %(default)s)")
    grid.add_argument("--seed", type=int, default=0, help="seed of the generated inputs (default: 0)")
    grid.add_argument("--cli", metavar="BINARY",
                      help="the built `sageattn` program: measures kernel-only times per problem")
    grid.add_argument("--quick", action="store_true",
                      help="a small grid for a smoke test: hd 128, N 1024,4096, causal 0,1, 3 samples")
    grid.add_argument("--no-plots", action="store_true", help="write the CSV files only")
    ap.add_argument("--plot-backend", choices=("auto", "matplotlib", "builtin"), default="auto",
                    help="auto: matplotlib when importable, else the built-in PNG renderer")
    return ap


def _split(values: Optional[Sequence[str]]) -> Optional[List[str]]:
    if values is None:
        return None
    return [item for v in values for item in v.replace(",", " ").split()]


def parse_args(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> argparse.Namespace:
    """Parses and checks the command line; fills the grid's defaults (--quick: the small grid).
    A bad value exits with status 2 and a message naming it (argparse)."""
    ap = build_parser(prog)
    args = ap.parse_args(argv)

    def ints(name: str, values, default, ok: Callable[[int], bool], what: str) -> List[int]:
        if values is None:
            return list(default)
        out = []
        for v in values:
            try:
                n = int(v)
            except ValueError:
                ap.error(f"--{name}: '{v}' is not an integer")
            if not ok(n):
                ap.error(f"--{name}: {n} is not {what}")
            out.append(n)
        return out

    def names(name: str, values, default, allowed) -> List[str]:
        if values is None:
            return list(default)
        for v in values:
            if v not in allowed:
                ap.error(f"--{name}: unknown '{v}' (expected {', '.join(allowed)})")
        return list(dict.fromkeys(values))

    quick = QUICK if args.quick else {}
    args.hd = ints("hd", _split(args.hd), quick.get("hd", STANDARD_HEAD_DIMS),
                   lambda d: 8 <= d <= 256 and d % 8 == 0, "a multiple of 8 in [8, 256]")
    args.seqlens = ints("seqlens", _split(args.seqlens), quick.get("seqlens", STANDARD_SEQLENS),
                        lambda n: n > 0, "positive")
    args.causal = ints("causal", _split(args.causal), quick.get("causal", STANDARD_CAUSAL),
                       lambda c: c in (0, 1), "0 or 1")
    args.modes = names("modes", _split(args.modes), DEFAULT_MODES, MODES)
    families = names("families", _split(args.families), FAMILIES, FAMILIES)
    args.families = ["gaussian"] + [f for f in families if f != "gaussian"]
    args.impls = names("impls", _split(args.impls), DEFAULT_IMPLS, IMPLS)
    args.warmup = quick.get("warmup", 3) if args.warmup is None else args.warmup
    args.iters = quick.get("iters", 10) if args.iters is None else args.iters
    for name, value, low in (("heads", args.heads, 1), ("tokens", args.tokens, 1), ("warmup", args.warmup, 0),
                             ("iters", args.iters, 1), ("reps", args.reps, 0)):
        if value < low:
            ap.error(f"--{name}: {value} is below {low}")
    return args


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    """The command line (see the module docstring); returns the exit status: 0 done, 1 nothing
    measured, 2 a bad command line or a missing requirement (a message, no traceback)."""
    args = parse_args(argv, prog)
    args.command = f"{prog} " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        return run_sweep(args) if args.sweep else run_plot(args)
    except BenchError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (the rows of finished problems are in the CSV files)", file=sys.stderr)
        return 130


# ---- plots and tables ----

def _report():
    """sageattn._report (figures and tables); needs this module to be imported as sageattn.bench."""
    if not __package__:
        raise BenchError("plots need the installed sageattn package (pip install .); "
                         "this copy of bench.py was loaded from a file")
    import importlib
    return importlib.import_module(f"{__package__}._report")


def load_csvs(paths: Sequence[str]) -> Tuple[list, list, List[str]]:
    """(results rows, accuracy rows, files read) of CSV files recognized by their header; when no
    accuracy file is among them, the first results file's ``accuracy/<stem>.csv`` (accuracy_path)
    is read too, where it exists."""
    rows: Dict[str, list] = {"results": [], "accuracy": []}
    files: Dict[str, List[str]] = {"results": [], "accuracy": []}
    for path in paths:
        kind, found = read_csv(path)
        rows[kind] += found
        files[kind].append(path)
    sibling = accuracy_path(files["results"][0]) if files["results"] else None
    if not files["accuracy"] and sibling and os.path.exists(sibling):
        rows["accuracy"] += read_csv(sibling)[1]
        files["accuracy"].append(sibling)
    return rows["results"], rows["accuracy"], files["results"] + files["accuracy"]


def run_plot(args: argparse.Namespace) -> int:
    """--plot: the figures and tables of existing CSV files, written into --out."""
    results, accuracy, files = load_csvs(args.plot)
    if not results:
        raise BenchError(f"--plot needs a results CSV (header {HEADER})")
    stem = os.path.splitext(os.path.basename(files[0]))[0]  # the first results file's
    for path in _report().write_report(results, accuracy, args.out, stem, ["from " + ", ".join(files)],
                                       args.plot_backend):
        print(path)
    return 0


# ---- the sweep ----

def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Impl(NamedTuple):
    name: str           # CSV impl
    mode: str           # CSV mode
    call: Callable      # (q, k, v, causal) -> out, all [B, H, N, D] bf16
    context: Callable   # () -> a context manager entered around the calls


def _environment(args: argparse.Namespace):
    """Imports what the sweep needs, or raises BenchError saying what is missing."""
    hint = ("; to plot results measured on a GPU machine: python -m sageattn.bench --plot FILE.csv")
    try:
        import torch
    except ImportError as e:
        raise BenchError(f"--sweep needs PyTorch and a CUDA GPU: torch is not importable ({e}){hint}") from None
    if not torch.cuda.is_available():
        raise BenchError(f"--sweep needs a CUDA GPU: torch {torch.__version__} sees none "
                         f"(torch.cuda.is_available() is False){hint}")
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: F401
    except ImportError as e:
        raise BenchError(f"--sweep needs torch.nn.attention.sdpa_kernel (torch >= 2.3): {e}") from None
    sageattn = None
    if any(i in SAGEATTN_IMPLS for i in args.impls):
        peers_only = "to time the peers alone: --impls " + ",".join(PEERS)
        try:
            import sageattn
        except ImportError as e:
            raise BenchError(f"the sageattn package is not importable ({e}); {peers_only}") from None
        if sageattn.TORCH_ERROR:
            raise BenchError(f"sageattn's torch integration is not loaded: {sageattn.TORCH_ERROR}")
        if not sageattn.CUDA_BUILD:
            raise BenchError("this sageattn build has no CUDA backend (built with SAGEATTN_ENABLE_CUDA=OFF); "
                             + peers_only)
        if not sageattn.gpu_available():
            raise BenchError(f"sageattn has no kernels for this GPU ({torch.cuda.get_device_name()}); "
                             + peers_only)
    original = None
    if ORIGINAL in args.impls:
        try:
            import sageattention as original
        except Exception as e:  # not installed, or broken (e.g. its triton kernels fail to load)
            original = None
            _log(f"note: the original sageattention package is not importable ({e!r}): not timed")
    if args.cli and not (os.path.isfile(args.cli) and os.access(args.cli, os.X_OK)):
        raise BenchError(f"--cli '{args.cli}': not an executable file (build it: cmake --build "
                         "build/<preset> --target sageattn_cli)")
    return torch, sageattn, original


def _package_version(name: str) -> str:
    try:
        import importlib.metadata
        return importlib.metadata.version(name)
    except Exception:
        return "?"


def _make_impls(torch, sageattn, original, args) -> List[_Impl]:
    """The implementations of --impls, sageattn once per --modes entry, in that order."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    sdpa = torch.nn.functional.scaled_dot_product_attention
    impls = []
    for name in args.impls:
        if name in SAGEATTN_IMPLS:
            for mode in args.modes:
                def call(q, k, v, causal, mode=mode, backend=SAGEATTN_IMPLS[name]):
                    return sageattn.sageattn(q, k, v, tensor_layout="HND", is_causal=bool(causal),
                                             pv_mode=mode, backend=backend)
                impls.append(_Impl(name, mode, call, contextlib.nullcontext))
        elif name in SDPA_PEERS:
            def call(q, k, v, causal):
                return sdpa(q, k, v, is_causal=bool(causal))
            member = getattr(SDPBackend, SDPA_PEERS[name])  # only this backend may run
            impls.append(_Impl(name, "bf16", call, lambda member=member: sdpa_kernel(member)))
        elif name == ORIGINAL and original is not None:
            def call(q, k, v, causal):
                return original.sageattn(q, k, v, tensor_layout="HND", is_causal=bool(causal))
            # sageattention 1.x: int8 Q.K^T, fp16 P.V (our fp16 mode); 2.x picks fp8 P.V on sm89+.
            mode = "fp16" if _package_version("sageattention").startswith("1.") else "fp8"
            impls.append(_Impl(name, mode, call, contextlib.nullcontext))
    return impls


def make_inputs(torch, family: str, batch: int, heads: int, seqlen: int, hd: int, seed: int,
                device: str = "cuda"):
    """bf16 q, k, v [B, H, N, D] of one input family (DESIGN.md §3): the definitions of
    src/cpu/inputs.cpp, drawn from torch's generator, so the values differ from the CLI's."""
    gen = torch.Generator(device=device).manual_seed(seed)

    def normal(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)

    q, k, v = (normal(batch, heads, seqlen, hd) for _ in range(3))
    if family != "gaussian":
        k += K_BIAS_STD * normal(batch, heads, 1, hd)  # one bias per (batch, head, channel)
    if family == "outliers":
        channels = [c * hd // OUTLIER_CHANNELS + 1 for c in range(OUTLIER_CHANNELS)]
        q[..., channels] *= OUTLIER_SCALE
        k[..., channels] *= OUTLIER_SCALE
        v += V_BIAS_STD * normal(batch, heads, 1, hd)
    return tuple(x.to(torch.bfloat16) for x in (q, k, v))


def reference(torch, q, k, v, causal: int):
    """float64 attention of the check subset: batch 0, the first CHECK_HEADS heads, the last
    CHECK_ROWS query rows (causal: bottom-right aligned, as those rows are in the full problem)."""
    n_q, n_k, hd = q.shape[2], k.shape[2], q.shape[3]
    heads, rows = min(CHECK_HEADS, q.shape[1]), min(CHECK_ROWS, n_q)
    s = (q[0, :heads, n_q - rows:].double() @ k[0, :heads].double().transpose(-1, -2)) * hd ** -0.5
    if causal:
        i = torch.arange(n_q - rows, n_q, device=q.device)[:, None]
        j = torch.arange(n_k, device=q.device)[None, :]
        s = s.masked_fill(j > i + n_k - n_q, float("-inf"))
    return torch.softmax(s, dim=-1) @ v[0, :heads].double()


def metrics(torch, out, ref) -> Tuple[float, float, float, float]:
    """(cos, rel_l1, rmse, max_abs) of the check subset of ``out`` against ``ref``."""
    heads, rows = ref.shape[0], ref.shape[1]
    got = out[0, :heads, out.shape[2] - rows:].double()
    diff = got - ref
    cos = (got * ref).sum() / torch.sqrt((got * got).sum() * (ref * ref).sum())
    rel_l1 = diff.abs().sum() / ref.abs().sum()
    return (float(cos), float(rel_l1), float(diff.square().mean().sqrt()), float(diff.abs().max()))


def time_ms(torch, stream, impl: _Impl, q, k, v, causal: int, warmup: int, iters: int,
            reps: int) -> Tuple[float, int, float]:
    """Median milliseconds per call: CUDA events on ``stream`` around ``reps`` back-to-back calls
    (0: chosen so a sample takes about AUTO_SAMPLE_MS), after ``warmup`` calls. Returns (ms, reps,
    host_ms).

    The ``iters`` samples are enqueued one after the other, without waiting between them, so that
    the host runs ahead of the GPU as it does in a model's forward pass: from the second sample on,
    the GPU does not idle while Python dispatches the next call, and the figure is the GPU's time
    per call. (Waiting after each sample would add every call's Python dispatch to it whenever a
    sample holds one call: ~0.2 ms per sageattn call, against a few tens of microseconds for the
    SDPA peers, whose dispatch is C++.) The host's own time per call, measured while the GPU is
    busy, is returned as host_ms (reported in the sweep's notes): a GPU time per call shorter than
    it would mean the host, not the GPU, sets the pace."""
    def enqueue(n: int):
        """n calls between two events, not waited for: (start, stop, host seconds per call)."""
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record(stream)
        for _ in range(n):
            impl.call(q, k, v, causal)
        stop.record(stream)
        return start, stop, (time.perf_counter() - t0) / max(n, 1)

    stream.wait_stream(torch.cuda.current_stream())  # the inputs were made on the current stream
    with torch.cuda.stream(stream), impl.context():
        for _ in range(warmup):
            impl.call(q, k, v, causal)
        if reps <= 0:
            start, stop, _ = enqueue(1)
            stop.synchronize()
            reps = max(1, min(MAX_REPS, math.ceil(AUTO_SAMPLE_MS / max(start.elapsed_time(stop), 1e-3))))
        samples = [enqueue(reps) for _ in range(iters)]
        samples[-1][1].synchronize()
    torch.cuda.current_stream().wait_stream(stream)
    times = [start.elapsed_time(stop) / reps for start, stop, _ in samples]
    # The first sample's host time may include the GPU catching up with the warm-up; the median
    # of the rest is the dispatch cost per call.
    host_s = [h for _, _, h in samples]
    host_ms = statistics.median(host_s[1:] if len(host_s) > 1 else host_s) * 1e3
    return statistics.median(times), reps, host_ms


def cli_kernel_tflops(cli: str, backend: str, hd: int, causal: int, seqlen: int, batch: int, heads: int,
                      modes: Sequence[str], warmup: int, iters: int) -> Tuple[Dict[str, float], Optional[str]]:
    """Kernel-only TFLOPS per mode from the `sageattn bench` program (its own gaussian inputs), and
    a note when it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cli.csv")
        cmd = [cli, "bench", "--device", "gpu", "--backend", backend, "--batch", str(batch),
               "--heads", str(heads), "--seqlen", str(seqlen), "--head-dim", str(hd),
               "--modes", ",".join(modes), "--warmup", str(warmup), "--iters", str(iters), "--csv", path]
        if causal:
            cmd.append("--causal")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return {}, f"{os.path.basename(cli)} failed: {e}"
        if r.returncode != 0:
            last = (r.stderr.strip() or r.stdout.strip() or "?").splitlines()[-1]
            return {}, f"{os.path.basename(cli)} exited {r.returncode}: {last}"
        rows = read_csv(path)[1]
    return {row.mode: row.kernel_tflops for row in rows if row.kernel_tflops is not None}, None


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (rev + (" (with uncommitted changes)" if dirty else "")) if rev else "? (not a git checkout)"


# What source_fingerprint hashes: the library, its Python package and the build files.
FINGERPRINT_PATHS = ("CMakeLists.txt", "include", "src", "python/sageattn", "python/src")


def source_fingerprint(root: str = ".") -> str:
    """SHA-256 (first 12 hex digits) of the files under FINGERPRINT_PATHS of the checkout at root,
    by relative path and content; "?" when root is not a sageattn checkout. It names the measured
    sources where the git revision cannot: a device copy of a working tree may carry stale git
    metadata (bench/RESULTS.md, 2026-12-06). To find the commit a figure belongs to, compute it for
    a candidate: ``git archive REV | tar -x -C d && python -c "from sageattn.bench import
    source_fingerprint as f; print(f('d'))"``."""
    if not os.path.isdir(os.path.join(root, "src")) or not os.path.isdir(os.path.join(root, "include")):
        return "?"
    files = []
    for top in FINGERPRINT_PATHS:
        base = os.path.join(root, top)
        if os.path.isfile(base):
            files.append(top)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames if not f.endswith(".pyc")]
    digest = hashlib.sha256()
    for rel in sorted(f.replace(os.sep, "/") for f in files):
        with open(os.path.join(root, rel), "rb") as fh:
            content = fh.read()
        digest.update(f"{rel}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:12]


def _cudnn_version(torch) -> str:
    try:
        return str(torch.backends.cudnn.version())
    except Exception:  # cuDNN missing or unusable: only the SDPA cuDNN rows are affected
        return "?"


def _clocks() -> str:
    if not shutil.which("nvidia-smi"):
        return "?"
    try:
        first_visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]  # torch's device 0
        r = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,driver_version",
                            "--format=csv,noheader", "--id=" + first_visible],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    parts = [p.strip() for p in r.stdout.strip().splitlines()[0].split(",")] if r.stdout.strip() else []
    return f"SM clock {parts[0]} (max {parts[1]}), driver {parts[2]}" if len(parts) == 3 else "?"


def _describe(args, torch, sageattn, original, impls: List[_Impl]) -> List[str]:
    """The lines that say what a sweep measures, where and how (printed first, kept in the summary)."""
    major, minor = torch.cuda.get_device_capability()
    per_sample = (f"back-to-back calls per sample for about {AUTO_SAMPLE_MS:g} ms" if args.reps == 0
                  else f"{args.reps} call(s) per sample")
    original_version = _package_version("sageattention") if original is not None else "not importable"
    return [
        f"device: {torch.cuda.get_device_name()} (sm_{major}{minor}), {_clocks()}",
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {_cudnn_version(torch)}); "
        f"sageattn {getattr(sageattn, '__version__', '-')}; sageattention {original_version}",
        f"git: {_git_revision()}; sources {source_fingerprint()} (sageattn.bench.source_fingerprint)",
        "command: " + getattr(args, "command", PROG + " --sweep"),
        f"grid: hd {_join(args.hd)}; causal {_join(args.causal)}; N {_join(args.seqlens)}; "
        f"batch {args.tokens} / N; {args.heads} heads; bf16, HND",
        "implementations: " + ", ".join(f"{i.name} {i.mode}" for i in impls),
        f"timing: end to end, CUDA events on a non-default stream, median of {args.iters} samples after "
        f"{args.warmup} warm-up calls, {per_sample}, enqueued without waiting between samples (the host "
        f"runs ahead, as in a forward pass; a host dispatch over {HOST_NOTE_FRACTION:.0%} of a call's GPU "
        "time is noted); kernel-only: "
        + (f"from {args.cli}" if args.cli else "not measured (no --cli)"),
        f"accuracy: vs float64 attention, batch 0, first {CHECK_HEADS} heads, last {CHECK_ROWS} query rows; "
        "families " + ", ".join(args.families),
    ]


def _measure(args, torch, stream, impls: List[_Impl], hd: int, causal: int, n: int):
    """One problem: accuracy of every implementation on every family, timing on the gaussian
    inputs, kernel-only times from --cli. Returns (results rows, accuracy rows, notes)."""
    batch = max(1, args.tokens // n)
    timed: Dict[Tuple[str, str], Tuple[float, Tuple[float, ...]]] = {}
    accuracy, notes, failed = [], [], set()
    for family_index, family in enumerate(args.families):
        q, k, v = make_inputs(torch, family, batch, args.heads, n, hd,
                              seed=args.seed * 1_000_003 + hd * 100_003 + n * 8 + family_index)
        ref = reference(torch, q, k, v, causal)
        for impl in impls:
            key = (impl.name, impl.mode)
            if key in failed:
                continue
            try:
                with impl.context():
                    out = impl.call(q, k, v, causal)
                m = metrics(torch, out, ref)
                del out
                accuracy.append(Accuracy(impl.name, impl.mode, family, hd, causal, n, batch, args.heads, *m))
                if family == "gaussian":
                    ms, _, host_ms = time_ms(torch, stream, impl, q, k, v, causal, args.warmup, args.iters,
                                             args.reps)
                    timed[key] = (flops(batch, args.heads, n, hd, causal) / (ms * 1e-3) / 1e12, m)
                    if host_ms >= HOST_NOTE_FRACTION * ms:
                        notes.append(f"{impl.name} {impl.mode}: the host's dispatch, {host_ms * 1e3:.0f} us per "
                                     f"call, is {host_ms / ms:.0%} of the GPU's {ms * 1e3:.0f} us")
            except (RuntimeError, NotImplementedError, ValueError, TypeError) as e:
                failed.add(key)
                reason = (str(e).strip() or type(e).__name__).splitlines()[0]
                notes.append(f"{impl.name} {impl.mode}: not run ({reason})")
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        del q, k, v, ref
        torch.cuda.empty_cache()

    kernel: Dict[Tuple[str, str], float] = {}
    for name, backend in (SAGEATTN_IMPLS.items() if args.cli else ()):
        modes = [i.mode for i in impls if i.name == name and (i.name, i.mode) in timed]
        if modes:
            by_mode, note = cli_kernel_tflops(args.cli, backend, hd, causal, n, batch, args.heads, modes,
                                              args.warmup, args.iters)
            kernel.update({(name, mode): tf for mode, tf in by_mode.items()})
            if note:
                notes.append(f"{name} kernel-only: {note}")
    rows = [Result(name, mode, hd, causal, n, batch, args.heads, tf, kernel.get((name, mode)), m[0], m[1])
            for (name, mode), (tf, m) in timed.items()]
    return rows, accuracy, notes


def run_sweep(args: argparse.Namespace) -> int:
    """--sweep: measures the grid, appending rows to the CSV files after each problem, then plots."""
    torch, sageattn, original = _environment(args)
    tag = gpu_tag(torch.cuda.get_device_name())
    csv_path = args.csv or results_path(args.out, tag, datetime.date.today().isoformat())
    results_file = CsvFile(csv_path, HEADER)
    accuracy_file = CsvFile(accuracy_path(csv_path), ACCURACY_HEADER)
    impls = _make_impls(torch, sageattn, original, args)
    if not impls:
        raise BenchError("nothing to time: no implementation of --impls is available")
    meta = _describe(args, torch, sageattn, original, impls)
    for line in meta:
        _log(line)
    _log(f"writing {csv_path} and {accuracy_file.path}")

    stream = torch.cuda.Stream()
    problems = [(hd, causal, n) for hd in args.hd for causal in args.causal for n in args.seqlens]
    for index, (hd, causal, n) in enumerate(problems, start=1):
        t0 = time.monotonic()
        rows, accuracy, notes = _measure(args, torch, stream, impls, hd, causal, n)
        results_file.append(rows)
        accuracy_file.append(accuracy)
        _log(f"[{index}/{len(problems)}] hd{hd} {'causal' if causal else 'non-causal'} N={n} "
             f"B={max(1, args.tokens // n)}: " + " | ".join(_progress_cell(r) for r in rows)
             + f" TFLOPS ({time.monotonic() - t0:.1f} s)")
        for note in notes:
            _log("    " + note)

    _log(f"{results_file.rows} rows in {csv_path}, {accuracy_file.rows} in {accuracy_file.path}")
    if results_file.rows and not args.no_plots:
        results, accuracy, _ = load_csvs([csv_path] + ([accuracy_file.path] if accuracy_file.rows else []))
        stem = os.path.splitext(os.path.basename(csv_path))[0]
        for path in _report().write_report(results, accuracy, args.out, stem, meta, args.plot_backend):
            _log("wrote " + path)
    return 0 if results_file.rows else 1


def _join(values) -> str:
    return ",".join(str(v) for v in values)


def _progress_cell(r: Result) -> str:
    text = f"{r.impl} {r.mode} {r.e2e_tflops:.0f}"
    if r.kernel_tflops is not None:
        text += f" (kernel {r.kernel_tflops:.0f})"
    if r.cos is not None and not r.cos >= 0.99:
        text += f" [cos {r.cos:.5f}: CHECK]"
    return text


if __name__ == "__main__":
    sys.exit(main())
