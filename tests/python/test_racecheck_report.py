"""scripts/racecheck_report.py, the classifier of gpu_check.sh's racecheck logs: the sm90 kernel's
K-scale handoff (shared array k_sc_smem, ordered by mbarriers, which racecheck does not model) is
known; anything else, a source line that no longer names the array, a missing summary or a
record count that disagrees with it fails. The logs are in racecheck's format (CUDA 13.0)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("racecheck_report", REPO / "scripts" / "racecheck_report.py")
rr = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rr  # dataclasses look their module up
_spec.loader.exec_module(rr)

KERNEL = REPO / "src" / "attention" / "sm90" / "kernel.cuh"
FN = ("void sageattn::sm90::attention_kernel<(int)128, (sageattn::PvMode)1>(sageattn::attn::KernelParams, "
      "CUtensorMap_st, CUtensorMap_st)")


def _lines_naming(array: str):
    return [i + 1 for i, t in enumerate(KERNEL.read_text().splitlines()) if array in t]


def _other_line():
    return next(i + 1 for i, t in enumerate(KERNEL.read_text().splitlines()) if t.strip() and "k_sc_smem" not in t)


def _record(read_fn, read_file, read_line, write_fn, write_file, write_line, hazards=(128, 16)):
    out = [f"========= Error: Race reported between Read access at {read_fn}+0x390 in {read_file}:{read_line}"]
    for i, h in enumerate(hazards):
        out.append(f"=========     and Write access at {write_fn}+0x{0x15540 + 16 * i:x} in {write_file}:{write_line} "
                   f"[{h} hazards]")
    out.append("========= ")
    return out


def _log(records, displayed=None):
    lines = ["========= COMPUTE-SANITIZER"]
    for r in records:
        lines += r
    lines.append("[  PASSED  ] 12 tests.")
    n = len(records) if displayed is None else displayed
    lines.append(f"========= RACECHECK SUMMARY: {n} hazards displayed ({n} errors, 0 warnings)")
    return "\n".join(lines) + "\n"


def _run(tmp_path, text, capsys):
    log = tmp_path / "race.log"
    log.write_text(text)
    rc = rr.main([str(log), "--root", str(REPO)])
    return rc, capsys.readouterr().out


def test_the_kernel_still_has_the_handoff():
    # A write (producer) and a read (consumers) of k_sc_smem besides its declaration; if the handoff
    # goes (e.g. to the async proxy), KNOWN_HANDOFFS and this file should go with it.
    assert len(_lines_naming("k_sc_smem")) >= 3


def test_handoff_hazards_are_known(tmp_path, capsys):
    lines = _lines_naming("k_sc_smem")
    lam = FN + "::[lambda(int) (instance 3)]::operator ()(int) const"
    recs = [_record(lam, "kernel.cuh", lines[-1], FN, "kernel.cuh", lines[1]) for _ in range(3)]
    rc, out = _run(tmp_path, _log(recs), capsys)
    assert rc == 0, out
    assert "3 record(s), 432 hazard(s)" in out and "all known" in out


def test_clean_log_passes(tmp_path, capsys):
    rc, out = _run(tmp_path, _log([]), capsys)
    assert rc == 0 and "racecheck: 0 hazards" in out


def test_other_line_of_the_kernel_is_new(tmp_path, capsys):
    lines = _lines_naming("k_sc_smem")
    recs = [_record(FN, "kernel.cuh", lines[-1], FN, "kernel.cuh", _other_line())]
    rc, out = _run(tmp_path, _log(recs), capsys)
    assert rc == 1 and "NEW" in out


def test_same_line_number_in_another_kernel_is_new(tmp_path, capsys):
    lines = _lines_naming("k_sc_smem")
    sm80 = FN.replace("sm90", "sm80")
    recs = [_record(sm80, "kernel.cuh", lines[-1], sm80, "kernel.cuh", lines[1])]
    rc, out = _run(tmp_path, _log(recs), capsys)
    assert rc == 1 and "NEW" in out


def test_probe_hazards_are_new(tmp_path, capsys):
    recs = [_record("handoff(float *, int)", "mbar_handoff.cu", 43, "handoff(float *, int)", "mbar_handoff.cu", 37)]
    rc, out = _run(tmp_path, _log(recs), capsys)
    assert rc == 1 and "1 of 1 hazard record(s) NEW" in out


def test_missing_summary_fails(tmp_path, capsys):
    text = _log([]).replace("RACECHECK SUMMARY", "something else")
    rc, out = _run(tmp_path, text, capsys)
    assert rc == 1 and "no RACECHECK SUMMARY" in out


def test_unparsed_records_fail(tmp_path, capsys):
    # The summary displays more records than were recognized: a format change must not pass.
    rc, out = _run(tmp_path, _log([], displayed=5), capsys)
    assert rc == 1 and "summary displays 5" in out


def test_unreadable_log(tmp_path, capsys):
    assert rr.main([str(tmp_path / "absent.log")]) == 2


@pytest.mark.parametrize("where,want", [
    ("void a::b<(int)1>(x)+0x1f0", "void a::b<(int)1>(x)"),
    ("handoff(float *, int)+0x690", "handoff(float *, int)"),
])
def test_offsets_are_dropped(where, want):
    assert rr._access("Read", where, "f.cu", "1").function == want
