"""Figures and tables of the benchmark report (``python -m sageattn.bench``), from parsed CSV rows.

A figure is first described as data (:class:`Figure` of :class:`Panel` s holding lines or bars),
then drawn by matplotlib when it is importable, else by the built-in renderer of
:mod:`sageattn._png` (numpy only), so a machine without matplotlib still makes plots.

- ``<stem>-tflops.png``: end-to-end TFLOPS against the sequence length, one panel per (head dim,
  causal), a line per implementation and mode; kernel-only TFLOPS dashed, where measured.
- ``<stem>-accuracy.png``: relative L1 error and 1 - cosine similarity against float64 attention,
  one panel per (metric, head dim), bars grouped by input family, one per implementation and mode;
  each bar is the worst value over the problems of the grid.
- ``<stem>-summary.md``: the same numbers as Markdown tables.
"""

from __future__ import annotations

import math
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

Color = Tuple[int, int, int]

_IMPL_ORDER = ("sageattn", "sageattn-sm90", "sageattn-sm80", "sageattn-cpu", "sdpa_flash", "sdpa_cudnn",
               "sdpa_efficient", "sageattention")
_MODE_ORDER = ("fp16", "fp8", "fp8_fp16acc", "bf16")
_FAMILY_ORDER = ("gaussian", "k_channel_bias", "outliers")
_PEER_LABELS = {"sdpa_flash": "SDPA flash (FA2)", "sdpa_cudnn": "SDPA cuDNN", "sdpa_efficient": "SDPA efficient"}
_COLORS = {
    ("sageattn", "fp8"): (214, 39, 40), ("sageattn", "fp16"): (255, 127, 14),
    ("sageattn", "fp8_fp16acc"): (140, 86, 75),
    ("sageattn-sm90", "fp8"): (227, 119, 194), ("sageattn-sm90", "fp16"): (188, 189, 34),
    ("sageattn-sm80", "fp8"): (23, 190, 207), ("sageattn-sm80", "fp16"): (174, 199, 232),
    ("sdpa_flash", "bf16"): (31, 119, 180), ("sdpa_cudnn", "bf16"): (44, 160, 44),
    ("sdpa_efficient", "bf16"): (127, 127, 127), ("sageattention", "fp16"): (148, 103, 189),
    ("sageattention", "fp8"): (148, 103, 189),
}
_SPARE_COLORS = [(0, 0, 0), (255, 152, 150), (197, 176, 213), (196, 156, 148), (219, 219, 141)]


def series_key(row) -> Tuple[str, str]:
    return row.impl, row.mode


def series_order(keys) -> List[Tuple[str, str]]:
    """Implementations in report order: sageattn first (by mode), then the peers."""
    def rank(key):
        impl, mode = key
        return (_IMPL_ORDER.index(impl) if impl in _IMPL_ORDER else len(_IMPL_ORDER), impl,
                _MODE_ORDER.index(mode) if mode in _MODE_ORDER else len(_MODE_ORDER), mode)
    return sorted(set(keys), key=rank)


def series_label(key: Tuple[str, str]) -> str:
    impl, mode = key
    return _PEER_LABELS.get(impl, f"{impl} {mode}")


def series_color(key: Tuple[str, str], order: Sequence[Tuple[str, str]] = ()) -> Color:
    if key in _COLORS:
        return _COLORS[key]
    spare = [k for k in order if k not in _COLORS]
    return _SPARE_COLORS[(spare.index(key) if key in spare else 0) % len(_SPARE_COLORS)]


def seqlen_label(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 and n >= 1024 else str(n)


# ---- figures as data ----

class Line(NamedTuple):
    label: str
    xs: List[float]
    ys: List[float]
    color: Color
    dashed: bool = False


class BarSet(NamedTuple):
    label: str
    values: List[Optional[float]]  # one per group; None: no bar
    color: Color


class Panel(NamedTuple):
    title: str
    xlabel: str
    ylabel: str
    lines: List[Line] = []
    bars: List[BarSet] = []
    groups: List[str] = []                  # bar panels: the group names along x
    xticks: List[Tuple[float, str]] = []    # line panels: x on a log2 axis, these ticks
    ylog: bool = False


class LegendEntry(NamedTuple):
    label: str
    color: Color
    style: str  # "line", "dashed" or "bar"


class Figure(NamedTuple):
    title: str
    panels: List[Panel]
    cols: int
    legend: List[LegendEntry]


def tflops_figure(results, title: str) -> Figure:
    """End-to-end (solid) and kernel-only (dashed) TFLOPS against N, a panel per (hd, causal)."""
    order = series_order(series_key(r) for r in results)
    hds = sorted({r.hd for r in results})
    causals = sorted({r.causal for r in results})
    panels, legend = [], {}
    for hd in hds:
        for causal in causals:
            rows = [r for r in results if r.hd == hd and r.causal == causal]
            lines = []
            for key in order:
                mine = sorted(_first_per_seqlen(r for r in rows if series_key(r) == key), key=lambda r: r.seqlen)
                color = series_color(key, order)
                for kind, dashed in (("e2e_tflops", False), ("kernel_tflops", True)):
                    pts = [(r.seqlen, getattr(r, kind)) for r in mine if getattr(r, kind) is not None]
                    if not pts:
                        continue
                    label = series_label(key) + (" kernel-only" if dashed else "")
                    lines.append(Line(label, [p[0] for p in pts], [p[1] for p in pts], color, dashed))
                    legend.setdefault(label, LegendEntry(label, color, "dashed" if dashed else "line"))
            seqlens = sorted({r.seqlen for r in rows})
            panels.append(Panel(f"hd {hd}, {'causal' if causal else 'non-causal'}", "sequence length N",
                                "TFLOPS", lines=lines, xticks=[(n, seqlen_label(n)) for n in seqlens]))
    return Figure(title, panels, max(1, len(causals)), list(legend.values()))


def _first_per_seqlen(rows):
    """One row per sequence length (a file with repeated problems: the first one)."""
    seen = {}
    for r in rows:
        seen.setdefault(r.seqlen, r)
    return list(seen.values())


def accuracy_table(results, accuracy) -> Dict[Tuple[str, int, Tuple[str, str]], Dict[str, float]]:
    """Worst accuracy over the grid per (family, hd, (impl, mode)): min cos, max rel_l1, rmse,
    max_abs. From the accuracy rows when there are any, else from the results rows (whose
    accuracy columns are the gaussian family's)."""
    source = accuracy if accuracy else [_as_gaussian(r) for r in results]
    table: Dict[Tuple[str, int, Tuple[str, str]], Dict[str, float]] = {}
    for r in source:
        if r.cos is None and r.rel_l1 is None:
            continue
        cell = table.setdefault((r.family, r.hd, series_key(r)), {})
        for name, value in (("cos", r.cos), ("rel_l1", r.rel_l1), ("rmse", r.rmse), ("max_abs", r.max_abs)):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            worst = min if name == "cos" else max
            cell[name] = worst(cell[name], value) if name in cell else value
    return table


class _GaussianRow(NamedTuple):
    impl: str
    mode: str
    family: str
    hd: int
    cos: Optional[float]
    rel_l1: Optional[float]
    rmse: Optional[float]
    max_abs: Optional[float]


def _as_gaussian(r) -> _GaussianRow:
    return _GaussianRow(r.impl, r.mode, "gaussian", r.hd, r.cos, r.rel_l1, None, None)


def accuracy_figure(results, accuracy, title: str) -> Figure:
    """Relative L1 and 1 - cos, worst over the grid, bars per implementation, grouped by family."""
    table = accuracy_table(results, accuracy)
    families = [f for f in _FAMILY_ORDER if any(k[0] == f for k in table)]
    families += sorted({k[0] for k in table} - set(families))
    hds = sorted({k[1] for k in table})
    order = series_order(k[2] for k in table)
    panels = []
    for metric, label, ylog in (("rel_l1", "relative L1 error", False), ("cos", "1 - cos", True)):
        for hd in hds:
            bars = []
            for key in order:
                values = []
                for family in families:
                    v = table.get((family, hd, key), {}).get(metric)
                    if v is not None and metric == "cos":
                        v = 1.0 - v
                    values.append(v if v is None or not ylog or v > 0 else None)
                if any(v is not None for v in values):
                    bars.append(BarSet(series_label(key), values, series_color(key, order)))
            panels.append(Panel(f"{label}, hd {hd}", "input family", label, bars=bars, groups=families, ylog=ylog))
    legend = [LegendEntry(series_label(k), series_color(k, order), "bar") for k in order]
    return Figure(title, panels, max(1, len(hds)), legend)


# ---- Markdown tables ----

def markdown(results, accuracy, meta: Sequence[str]) -> str:
    """The report's tables: TFLOPS per problem (kernel-only in parentheses), worst accuracy per family."""
    out = ["# sageattn benchmark summary", ""] + [f"- {line}" for line in meta] + [""]
    order = series_order(series_key(r) for r in results)
    out += ["## TFLOPS, end to end (kernel-only in parentheses)", "",
            "| hd | causal | N | " + " | ".join(series_label(k) for k in order) + " |",
            "|---|---|---|" + "---|" * len(order)]
    cells: Dict[Tuple[int, int, int, Tuple[str, str]], object] = {}
    for r in results:
        cells.setdefault((r.hd, r.causal, r.seqlen, series_key(r)), r)
    for hd, causal, n in sorted({(r.hd, r.causal, r.seqlen) for r in results}):
        row = [str(hd), str(causal), str(n)]
        for key in order:
            r = cells.get((hd, causal, n, key))
            text = "-" if r is None or r.e2e_tflops is None else f"{r.e2e_tflops:.0f}"
            if r is not None and r.kernel_tflops is not None:
                text += f" ({r.kernel_tflops:.0f})"
            row.append(text)
        out.append("| " + " | ".join(row) + " |")

    table = accuracy_table(results, accuracy)
    if table:
        acc_order = series_order(k[2] for k in table)
        out += ["", "## Accuracy against float64 attention: cos / relative L1 (worst over the grid)", "",
                "| family | hd | " + " | ".join(series_label(k) for k in acc_order) + " |",
                "|---|---|" + "---|" * len(acc_order)]
        families = [f for f in _FAMILY_ORDER if any(k[0] == f for k in table)]
        families += sorted({k[0] for k in table} - set(families))
        for family in families:
            for hd in sorted({k[1] for k in table if k[0] == family}):
                row = [family, str(hd)]
                for key in acc_order:
                    cell = table.get((family, hd, key), {})
                    row.append(f"{cell['cos']:.6f} / {cell['rel_l1']:.4f}" if "cos" in cell and "rel_l1" in cell
                               else "-")
                out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


# ---- rendering ----

def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render(figure: Figure, path: str, backend: str = "auto") -> str:
    """Draws ``figure`` into the PNG file ``path``; returns the backend used."""
    if backend == "matplotlib" or (backend == "auto" and matplotlib_available()):
        _render_matplotlib(figure, path)
        return "matplotlib"
    _render_builtin(figure, path)
    return "builtin"


def write_report(results, accuracy, out_dir: str, stem: str, meta: Sequence[str],
                 backend: str = "auto") -> List[str]:
    """Writes ``<stem>-tflops.png``, ``<stem>-accuracy.png`` (when there is accuracy data) and
    ``<stem>-summary.md`` into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    fig = tflops_figure(results, f"sageattn vs peers: TFLOPS end to end ({stem})")
    if fig.panels:
        paths.append(os.path.join(out_dir, f"{stem}-tflops.png"))
        render(fig, paths[-1], backend)
    acc = accuracy_figure(results, accuracy, f"accuracy vs float64 attention, worst over the grid ({stem})")
    if any(p.bars for p in acc.panels):
        paths.append(os.path.join(out_dir, f"{stem}-accuracy.png"))
        render(acc, paths[-1], backend)
    paths.append(os.path.join(out_dir, f"{stem}-summary.md"))
    with open(paths[-1], "w") as f:
        f.write(markdown(results, accuracy, meta))
    return paths


def _rgb01(color: Color) -> Tuple[float, float, float]:
    return tuple(c / 255.0 for c in color)


def _render_matplotlib(figure: Figure, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    cols = figure.cols
    rows = math.ceil(len(figure.panels) / cols)
    legend_rows = math.ceil(len(figure.legend) / 4)
    height = 3.2 * rows + 0.6 + 0.25 * legend_rows
    fig = MplFigure(figsize=(5.4 * cols, height), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, panel in zip(axes.flat, figure.panels):
        for line in panel.lines:
            ax.plot(line.xs, line.ys, color=_rgb01(line.color), linestyle="--" if line.dashed else "-",
                    marker="o", markersize=2.5 if line.dashed else 3.5, linewidth=1.5)
        if panel.xticks:
            ax.set_xscale("log", base=2)
            ax.set_xticks([x for x, _ in panel.xticks], [t for _, t in panel.xticks])
            ax.minorticks_off()
        if panel.bars:
            width = 0.8 / len(panel.bars)
            for i, bars in enumerate(panel.bars):
                pts = [(g + (i - (len(panel.bars) - 1) / 2) * width, v) for g, v in enumerate(bars.values)
                       if v is not None]
                ax.bar([p[0] for p in pts], [p[1] for p in pts], width=width, color=_rgb01(bars.color))
            ax.set_xticks(range(len(panel.groups)), panel.groups)
        if panel.ylog:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.grid(True, axis="y" if panel.bars else "both", alpha=0.3)
    for ax in list(axes.flat)[len(figure.panels):]:
        ax.set_visible(False)
    handles = [Patch(color=_rgb01(e.color), label=e.label) if e.style == "bar" else
               Line2D([], [], color=_rgb01(e.color), linestyle="--" if e.style == "dashed" else "-",
                      marker="o", markersize=3.5, label=e.label) for e in figure.legend]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False, fontsize=9)
    fig.suptitle(figure.title, fontsize=11)
    fig.tight_layout(rect=(0, (0.15 + 0.25 * legend_rows) / height, 1, 1))
    fig.savefig(path)


# Built-in renderer geometry, in pixels (font scale 2: capitals 14 px high, 12 px per character).
_SCALE = 2
_PLOT_W, _PLOT_H = 500, 280                      # the plotting area of a panel
_LEFT, _RIGHT, _TOP, _BOTTOM = 100, 30, 44, 72   # a panel's margins around it
_TITLE_H, _LEGEND_ROW_H, _LEGEND_SAMPLE = 60, 30, 34
_INK, _AXIS, _GRID = (30, 30, 30), (90, 90, 90), (228, 228, 228)


def _render_builtin(figure: Figure, path: str) -> None:
    from . import _png

    cols = figure.cols
    rows = math.ceil(len(figure.panels) / cols)
    cell_w, cell_h = _LEFT + _PLOT_W + _RIGHT, _TOP + _PLOT_H + _BOTTOM
    width = max(cols * cell_w + 20, _png.text_size(figure.title, _SCALE)[0] + 40)
    margin = (width - cols * cell_w) / 2  # the panels, centered
    entries = [(e, _LEGEND_SAMPLE + 10 + _png.text_size(e.label, _SCALE)[0] + 30) for e in figure.legend]
    legend_lines, line, used = [], [], 0
    for entry, w in entries:
        if line and used + w > width - 40:
            legend_lines.append(line)
            line, used = [], 0
        line.append((entry, w))
        used += w
    if line:
        legend_lines.append(line)
    height = _TITLE_H + rows * cell_h + len(legend_lines) * _LEGEND_ROW_H + 20
    canvas = _png.Canvas(width, height)
    canvas.text(width / 2, 20, figure.title, _INK, scale=_SCALE, anchor="ct")
    for i, panel in enumerate(figure.panels):
        x0 = margin + (i % cols) * cell_w + _LEFT
        y0 = _TITLE_H + (i // cols) * cell_h + _TOP
        _draw_panel(canvas, panel, x0, y0)
    y = _TITLE_H + rows * cell_h + 6
    for line in legend_lines:
        x = (width - sum(w for _, w in line)) / 2
        for entry, w in line:
            cy = y + _LEGEND_ROW_H / 2
            if entry.style == "bar":
                canvas.rect(x + 8, cy - 8, x + _LEGEND_SAMPLE - 8, cy + 8, entry.color)
            else:
                canvas.polyline([(x, cy), (x + _LEGEND_SAMPLE, cy)], entry.color, 2.5,
                                dash=(7, 5) if entry.style == "dashed" else None)
                canvas.disc(x + _LEGEND_SAMPLE / 2, cy, 3.5, entry.color)
            canvas.text(x + _LEGEND_SAMPLE + 10, cy, entry.label, _INK, scale=_SCALE, anchor="lm")
            x += w
        y += _LEGEND_ROW_H
    canvas.save(path)


def _draw_panel(canvas, panel: Panel, x0: float, y0: float) -> None:
    """One panel with its plotting area at (x0, y0) .. (x0 + _PLOT_W, y0 + _PLOT_H)."""
    x1, y1 = x0 + _PLOT_W, y0 + _PLOT_H
    values = [y for line in panel.lines for y in line.ys] + [v for b in panel.bars for v in b.values if v is not None]
    ticks, to_unit = _y_axis([v for v in values if v is not None and (v > 0 or not panel.ylog)], panel.ylog)

    def ypix(v: float) -> float:
        return y1 - to_unit(v) * _PLOT_H

    for value, label in ticks:
        y = ypix(value)
        canvas.rect(x0, y, x1, y + 1, _GRID)
        canvas.rect(x0 - 5, y, x0, y + 1, _AXIS)
        canvas.text(x0 - 9, y, label, _INK, scale=_SCALE, anchor="rm")
    canvas.text(x0 + _PLOT_W / 2, y0 - 12, panel.title, _INK, scale=_SCALE, anchor="cb")
    canvas.text(x0 - _LEFT + 8, y0 + _PLOT_H / 2, panel.ylabel, _INK, scale=_SCALE, anchor="lm", vertical=True)
    canvas.text(x0 + _PLOT_W / 2, y1 + 40, panel.xlabel, _INK, scale=_SCALE, anchor="ct")

    if panel.lines:
        xs = [math.log2(x) for line in panel.lines for x in line.xs] + [math.log2(x) for x, _ in panel.xticks]
        lo, hi = min(xs) - 0.3, max(xs) + 0.3

        def xpix(x: float) -> float:
            return x0 + (math.log2(x) - lo) / (hi - lo) * _PLOT_W

        for x, label in panel.xticks:
            canvas.rect(xpix(x), y1, xpix(x) + 1, y1 + 5, _AXIS)
            canvas.text(xpix(x), y1 + 12, label, _INK, scale=_SCALE, anchor="ct")
        for line in panel.lines:
            pts = [(xpix(x), ypix(y)) for x, y in zip(line.xs, line.ys) if y > 0 or not panel.ylog]
            canvas.polyline(pts, line.color, 2.5, dash=(7, 5) if line.dashed else None)
            for px, py in pts:
                canvas.disc(px, py, 2.5 if line.dashed else 3.5, line.color)
    if panel.bars:
        slot = _PLOT_W / max(1, len(panel.groups))
        bar_w = 0.8 * slot / len(panel.bars)
        for g, group in enumerate(panel.groups):
            left = x0 + g * slot + 0.1 * slot
            for i, bars in enumerate(panel.bars):
                v = bars.values[g]
                if v is not None:
                    canvas.rect(left + i * bar_w + 1, ypix(v), left + (i + 1) * bar_w - 1, y1, bars.color)
            canvas.text(x0 + (g + 0.5) * slot, y1 + 12, group, _INK, scale=_SCALE, anchor="ct")
    # The frame last, over the data's edges.
    for a, b in (((x0, y0), (x1, y0 + 1)), ((x0, y1), (x1 + 1, y1 + 1)), ((x0, y0), (x0 + 1, y1)),
                 ((x1, y0), (x1 + 1, y1))):
        canvas.rect(a[0], a[1], b[0], b[1], _AXIS)


def _y_axis(values: Sequence[float], log: bool):
    """Ticks [(value, label)] and a function mapping a value to [0, 1] of the axis height:
    linear from 0 to a round number above the largest value, or whole decades (log)."""
    if log:
        lo = math.floor(math.log10(min(values))) if values else -6
        hi = math.ceil(math.log10(max(values))) if values else 0
        hi = max(hi, lo + 1)
        ticks = [(10.0 ** e, _decade_label(e)) for e in range(lo, hi + 1)]
        return ticks, lambda v: (math.log10(v) - lo) / (hi - lo)
    top = max(values) if values else 1.0
    top = top if top > 0 else 1.0
    raw = top / 5
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    count = math.ceil(top / step - 1e-9)
    ticks = [(i * step, f"{round(i * step, 10):g}") for i in range(count + 1)]
    return ticks, lambda v: v / (count * step)


def _decade_label(e: int) -> str:
    return f"{10.0 ** e:g}" if -3 <= e <= 3 else f"1e{e}"
