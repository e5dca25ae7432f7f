"""Benchmark: an upload's cost stays flat whatever the file's shape (issue 13, item 1).

`.venv/bin/python bench/import_shapes.py` parses, in this process, files of the upload limit's size
(2 MB) in several shapes and prints, for each, the time, the peak memory allocated while parsing
(tracemalloc) and both as ratios to the baseline measured in the same run: a well-formed positions file of
5,000 rows. Shapes: a header of a million columns, 200 columns on every row, 5,000 rows that are all
wrong, one endless quoted value, an OFX statement of 4,900 positions, an OFX file nested 600,000 deep
(which crashed the parser before the bounds). Goal: every odd shape (each is refused) within 3x the
baseline's peak memory, answered with at most 100 problems (plus a count of the rest). Well-formed files
are not odd shapes: their cost grows with their positions, capped by the row limit (IMPORT_MAX_ROWS), and
is printed for information (an OFX statement costs far more per position than a CSV: ofxtools builds an
object per element).
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 2 * 1024 * 1024
GOAL_RATIO = 3.0


def shapes() -> dict[str, bytes]:
    rows = b"".join(b"ACCT%d,TICK%d,%d.5,%d.25\n" % (i % 7, i % 900, i, i * 3) for i in range(5000))
    baseline = b"account,ticker,shares,cost_basis\n" + rows
    return {
        "baseline: 5,000 good rows": baseline,
        "a million columns": (b"ticker,shares" + b",x" * 1_000_000)[:LIMIT],
        "200 columns on each row": (b"ticker,shares" + b",x" * 198 + b"\n" + (b"AAPL,1" + b",1" * 198 + b"\n")
                                    * 4000)[:LIMIT],
        "5,000 bad rows": b"ticker,shares\n" + b"=bad,-1\n" * 5000,
        "an endless quoted value": b'ticker,shares\n"' + b"A" * (LIMIT - 20),
        "OFX: 4,900 positions": _ofx_positions(4900),
        "OFX: 600,000 nested tags": OFX_HEAD + b"<OFX>" + b"<X>" * 600_000,
    }


OFX_HEAD = b"OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\n\r\n"


def _ofx_positions(count: int) -> bytes:
    """The OFX fixture with its first position repeated `count` times (a well-formed, large statement)."""
    data = (ROOT / "tests" / "fixtures" / "brokers" / "Fidelity_X12345678.qfx").read_bytes()
    start, end = data.index(b"<POSSTOCK>"), data.index(b"</POSSTOCK>") + len(b"</POSSTOCK>")
    return data[:start] + data[start:end] * count + data[end:]


def measure(data: bytes) -> tuple[float, int, str]:
    from portfolios.holdings.importers import ImportFailed, parse_positions

    tracemalloc.start()
    started = time.perf_counter()
    try:
        parsed = parse_positions(data, max_bytes=LIMIT + 1024)
        outcome = f"read {len(parsed.positions)} positions"
    except ImportFailed as exc:
        outcome = f"refused: {len(exc.errors)} problems shown, {exc.more} more"
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak, outcome


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
    import django

    django.setup()
    results = {name: measure(data) for name, data in shapes().items()}
    base_s, base_peak, _ = results["baseline: 5,000 good rows"]
    worst = 0.0
    print(f"{'shape':28} {'time s':>8} {'x base':>7} {'peak MB':>8} {'x base':>7}  outcome")
    for name, (seconds, peak, outcome) in results.items():
        ratio = peak / base_peak
        if outcome.startswith("refused"):  # an odd shape: the goal applies
            worst = max(worst, ratio)
        print(f"{name:28} {seconds:8.3f} {seconds / base_s:7.2f} {peak / 1e6:8.2f} {ratio:7.2f}  {outcome}")
    ok = worst <= GOAL_RATIO
    print(f"RESULT worst_peak_ratio={worst:.2f} goal<={GOAL_RATIO} {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
