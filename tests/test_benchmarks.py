"""benchmarks/run.py --quick writes all five sections with numeric ratios (never asserts speed)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

RATIO = re.compile(r"\d+\.\d+ \(IQR \d+\.\d+-\d+\.\d+, n=\d+\)")
SPEEDUP = re.compile(r"\| \d+\.\d+x (?=\|)")
HEADER_KEYS = (
    "CPU",
    "cores",
    "torch threads",
    "python",
    "torch",
    "lightning",
    "torchattacks",
    "torch-pruning",
    "date",
    "command",
)


def _sections(text: str) -> dict[str, str]:
    """Section number ('1'..'5') -> its markdown body."""
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {p[0]: p for p in parts[1:] if p[:1].isdigit()}


def _medians(node) -> list[float]:
    """Every ratio median anywhere in the --json numbers."""
    if isinstance(node, dict):
        found = [node["median"]] if {"median", "q1", "q3", "n"} <= node.keys() else []
        return found + [m for v in node.values() for m in _medians(v)]
    return []


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path: Path) -> None:
    out, numbers = tmp_path / "RESULTS.md", tmp_path / "results.json"
    # One thread: the smoke run must not depend on how busy the machine's other cores are.
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--threads", "1"]
    proc = subprocess.run(
        [*command, "--out", str(out), "--json", str(numbers)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    text = out.read_text()
    assert "**FAILED**" not in text and "NOT RUN" not in text, text
    for key in HEADER_KEYS:
        assert f"| {key}" in text
    assert "benchmarks/run.py --quick" in text  # the exact command is recorded

    sections = _sections(text)
    assert sorted(sections) == ["1", "2", "3", "4", "5"]
    for number in "123":
        assert RATIO.search(sections[number]), sections[number]
    # 7 variants x (theoretical, measured b1, measured bN)
    assert len(SPEEDUP.findall(sections["4"])) >= 7 * 3
    assert "not realisable by dense kernels" in sections["4"]
    if (ROOT / "benchmarks" / "eval_cost.py").is_file():
        assert re.search(r"\d\.\d", sections["5"]), sections["5"]
    else:
        assert "PENDING" in sections["5"] and "eval_cost.py" in sections["5"]

    medians = _medians(json.loads(numbers.read_text())["sections"])
    assert len(medians) >= 8
    assert all(math.isfinite(m) and m > 0 for m in medians)
