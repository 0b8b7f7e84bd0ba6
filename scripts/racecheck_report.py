#!/usr/bin/env python3
"""Classify the hazards of a `compute-sanitizer --tool racecheck` log (scripts/gpu_check.sh).

Racecheck (CUDA 13.0) does not model the acquire/release ordering of mbarriers for ordinary
shared-memory accesses: it reports hazards on a correct mbarrier handoff
(scripts/probes/mbar_handoff.cu, bench/NOTES.md section 17). The sm90 kernel hands each block's
K dequantization scales from a producer thread to the consumer warps that way, through the
shared array ``k_sc_smem``, so every racecheck run of it reports hazards there.

A hazard record is *known* when every access it names is in one of KNOWN_HANDOFFS: a function
of the given namespace, at a line of the given source file whose text names the given shared
array. Any other record is *new* and fails the check. Usage::

    racecheck_report.py LOG [--root DIR]

prints one line per distinct record and a verdict; exit status 0 when the log has a racecheck
summary and every hazard record is known, 1 otherwise (2: the log cannot be read).
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# (function prefix, source file relative to the repository root, shared array): an access is part
# of a known mbarrier handoff when its function starts with the prefix (after any return type)
# and its line of the file names the array.
KNOWN_HANDOFFS = [
    ("sageattn::sm90::attention_kernel", "src/attention/sm90/kernel.cuh", "k_sc_smem"),
]

_FIRST = re.compile(r"Race reported between (\w+) access at (.*) in ([^\s:]+):(\d+)\s*$")
_MORE = re.compile(r"^=+\s+and (\w+) access at (.*) in ([^\s:]+):(\d+)(?: \[(\d+) hazards?\])?\s*$")
_SUMMARY = re.compile(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)")


@dataclass(frozen=True)
class Access:
    kind: str      # Read / Write
    function: str  # demangled, with the offset (+0x...) removed
    file: str      # base name as racecheck prints it
    line: int


@dataclass
class Record:
    accesses: list = field(default_factory=list)
    hazards: int = 0


def _access(kind: str, where: str, file: str, line: str) -> Access:
    return Access(kind, re.sub(r"\+0x[0-9a-fA-F]+$", "", where.strip()), file, int(line))


def parse(text: str):
    """The hazard records and the summary (hazards, errors, warnings) or None of a racecheck log."""
    records, current, summary = [], None, None
    for raw in text.splitlines():
        m = _FIRST.search(raw)
        if m:
            current = Record([_access(*m.groups())])
            records.append(current)
            continue
        m = _MORE.match(raw)
        if m and current is not None:
            current.accesses.append(_access(*m.groups()[:4]))
            current.hazards += int(m.group(5) or 1)
            continue
        m = _SUMMARY.search(raw)
        if m:
            summary = tuple(int(g) for g in m.groups())
        current = current if raw.startswith("=") else None
    return records, summary


def _source_line(root: Path, rel: str, line: int, cache: dict) -> str:
    if rel not in cache:
        try:
            cache[rel] = (root / rel).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            cache[rel] = []
    lines = cache[rel]
    return lines[line - 1] if 0 < line <= len(lines) else ""


def known(access: Access, root: Path, cache: dict) -> bool:
    # "void ns::f<...>(...)" or "ns::f<...>(...)::[lambda(int) (instance 3)]::operator ()(int) const"
    function = re.sub(r"^(?:void|\w+)\s+(?=\w+::)", "", access.function)
    for prefix, rel, array in KNOWN_HANDOFFS:
        if (function.startswith(prefix) and Path(rel).name == access.file and
                array in _source_line(root, rel, access.line, cache)):
            return True
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent),
                    help="repository root holding the sources named in KNOWN_HANDOFFS")
    args = ap.parse_args(argv)
    try:
        text = Path(args.log).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        print(f"racecheck_report: cannot read {args.log}: {e}", file=sys.stderr)
        return 2
    records, summary = parse(text)
    root, cache = Path(args.root), {}
    groups = {}
    for r in records:
        key = tuple(sorted({(a.kind, a.file, a.line) for a in r.accesses}))
        ok = all(known(a, root, cache) for a in r.accesses)
        n, h, _ = groups.get(key, (0, 0, ok))
        groups[key] = (n + 1, h + r.hazards, ok)
    new = sum(n for n, _, ok in groups.values() if not ok)
    for key, (n, h, ok) in sorted(groups.items()):
        sites = " / ".join(f"{k} {f}:{l}" for k, f, l in key)
        tag = "known mbarrier handoff (bench/NOTES.md section 17)" if ok else "NEW"
        print(f"  {n} record(s), {h} hazard(s): {sites}: {tag}")
    if summary is None:
        print("racecheck: no RACECHECK SUMMARY in the log (did the run finish?)")
        return 1
    shown = summary[0]
    if new:
        print(f"racecheck: {new} of {len(records)} hazard record(s) NEW ({shown} displayed)")
        return 1
    if len(records) != shown:
        print(f"racecheck: parsed {len(records)} record(s) but the summary displays {shown}")
        return 1
    print(f"racecheck: {shown} hazard record(s), all known" if shown else "racecheck: 0 hazards")
    return 0


if __name__ == "__main__":
    sys.exit(main())
