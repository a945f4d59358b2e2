"""The benchmark report: one table, as text for the terminal, Markdown and JSON for the record.

Every row is a figure measured in this run, with the baseline measured beside it in the same
run (so a noisy shared machine moves both), their ratio, the target and a verdict. A figure
that could not be measured says so; nothing here ever fails the build.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    mosquitto = ""
    if shutil.which("mosquitto"):
        out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout
        mosquitto = out.splitlines()[0] if out else ""
    return {"host": platform.node(), "arch": platform.machine(), "cores": os.cpu_count(), "cpu": cpu,
            "memory_gib": round(mem / 2**30, 1), "kernel": platform.release(),
            "python": platform.python_version(), "broker": mosquitto,
            "when": datetime.now(UTC).isoformat(timespec="seconds")}


def verdict(row: dict[str, Any]) -> str:
    value, target = row.get("value"), row.get("target")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NOT MEASURED"
    if row.get("target_ratio") is not None:  # a figure held to its same-run baseline
        rt = ratio(row)
        return "-" if rt is None else "PASS" if rt <= row["target_ratio"] else "FAIL"
    if target is None:
        return "-"
    met = value >= target if row.get("higher_is_better") else value <= target
    return "PASS" if met else "FAIL"


def ratio(row: dict[str, Any]) -> float | None:
    base, value = row.get("baseline"), row.get("value")
    if not base or value is None:
        return None
    return float(value) / float(base)


def _fmt(x: Any) -> str:
    """Up to three decimals, trailing zeros dropped; '-' for nothing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return str(x)


def _target(row: dict[str, Any]) -> str:
    """The target column: a value, or a ratio to the baseline (``target_ratio``)."""
    if row.get("target_ratio") is not None:
        return f"≤{_fmt(row['target_ratio'])}x"
    return _fmt(row.get("target"))


def text_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'figure':<60} {'value':>10} {'unit':<8} {'baseline':>9} {'ratio':>7} {'target':>8} verdict"]
    for r in rows:
        rt = ratio(r)
        lines.append(f"{r['figure']:<60} {_fmt(r.get('value')):>10} {r.get('unit', ''):<8} "
                     f"{_fmt(r.get('baseline')):>9} {'-' if rt is None else f'{rt:.2f}x':>7} "
                     f"{_target(r):>8} {verdict(r)}")
    notes = [f"  {r['figure']}: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(lines + (["notes:", *notes] if notes else []))


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    out = ["# Benchmark report", "",
           "Written by `make bench` (`python -m bench`). Each baseline was measured in the same run as "
           "its figure; the ratio is value / baseline. A FAIL is stated, never hidden, and never "
           "fails the build.", "",
           "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v), "",
           "| figure | value | unit | baseline | ratio | target | verdict |",
           "|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        rt = ratio(r)
        out.append(f"| {r['figure']} | {_fmt(r.get('value'))} | {r.get('unit', '')} "
                   f"| {_fmt(r.get('baseline'))} | {'-' if rt is None else f'{rt:.2f}x'} "
                   f"| {_target(r)} | {verdict(r)} |")
    notes = [f"- **{r['figure']}**: {r['note']}" for r in rows if r.get("note")]
    return "\n".join(out + (["", "Notes:", "", *notes] if notes else [])) + "\n"


def write(rows: list[dict[str, Any]], info: dict[str, Any], folder: Path = HERE) -> tuple[Path, Path]:
    """bench/report.md and bench/report.json."""
    clean = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]
    doc = {"machine": info, "rows": [{**r, "ratio": ratio(r), "verdict": verdict(r)} for r in clean]}
    md, js = folder / "report.md", folder / "report.json"
    md.write_text(markdown(rows, info), encoding="utf-8")
    js.write_text(json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n", encoding="utf-8")
    return md, js


def _json_default(x: Any) -> Any:
    return str(x)
