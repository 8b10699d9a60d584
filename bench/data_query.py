"""Data-query benchmark: grouped questions over 1M rows through the shape path, plain DuckDB and plain pandas.

    .venv/bin/python bench/data_query.py [--rows 1000000] [--repeats 7]

Generates a Parquet file of numpy-random orders (fixed seed) in a temp dir, then times, as medians:
- agentops: answer_question() on the shape path (parse, DESCRIBE, DuckDB SQL, JSON-safe rows), with and without
  the PNG chart; no model is involved on this path;
- duckdb: the same SQL on a fresh connection, fetched to Python rows;
- pandas: read_parquet + groupby, and groupby alone on a frame already in memory.
The machine is shared and noisy, so read ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentops.data import answer_question  # noqa: E402

QUESTIONS = {"top 5 products by revenue": "top", "revenue by month": "month"}
TARGET_SECONDS = 1.0


def make_orders(path: Path, rows: int, seed: int = 2026) -> None:
    rng = np.random.default_rng(seed)
    products = np.array([f"product-{i}" for i in range(8)])
    regions = np.array(["North", "South", "East", "West", "Central"])
    units = rng.integers(1, 20, rows)
    unit_price = np.round(rng.uniform(5, 1200, rows), 2)
    frame = pd.DataFrame({
        "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
        "region": regions[rng.integers(0, len(regions), rows)],
        "product": products[rng.integers(0, len(products), rows)],
        "units": units, "unit_price": unit_price, "revenue": np.round(units * unit_price, 2)})
    frame["date"] = frame["date"].dt.date
    frame.to_parquet(path, index=False)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run(rows: int, repeats: int) -> list[dict[str, object]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        path = root / "data" / "orders.parquet"
        make_orders(path, rows)
        frame = pd.read_parquet(path)
        frame["date"] = pd.to_datetime(frame["date"])
        for question, kind in QUESTIONS.items():
            sql = answer_question("orders", question, root=root).sql or ""
            raw_sql = sql.replace('FROM "orders"', f"FROM read_parquet('{path}')")

            def shape_path(q: str = question) -> object:
                return answer_question("orders", q, root=root)

            def shape_path_no_chart(q: str = question) -> object:
                return answer_question("orders", q, root=root, chart=False)

            def plain_duckdb(statement: str = raw_sql) -> object:
                with duckdb.connect() as con:
                    return con.execute(statement).fetchall()

            def pandas_read_and_group(k: str = kind) -> object:
                return _pandas_group(pd.read_parquet(path), k)

            def pandas_group_in_memory(k: str = kind) -> object:
                return _pandas_group(frame, k)

            results.append({"question": question, "rows": rows, "timings": {
                "agentops shape path (with chart)": median_seconds(shape_path, repeats),
                "agentops shape path (no chart)": median_seconds(shape_path_no_chart, repeats),
                "duckdb SQL, same query": median_seconds(plain_duckdb, repeats),
                "pandas read_parquet + groupby": median_seconds(pandas_read_and_group, repeats),
                "pandas groupby (in memory)": median_seconds(pandas_group_in_memory, repeats)}})
    return results


def _pandas_group(frame: pd.DataFrame, kind: str) -> object:
    if kind == "top":
        return frame.groupby("product")["revenue"].sum().nlargest(5)
    dates = pd.to_datetime(frame["date"])
    return frame.groupby(dates.dt.to_period("M"))["revenue"].sum()


def print_table(results: list[dict[str, object]]) -> None:
    for result in results:
        timings: dict[str, float] = result["timings"]  # type: ignore[assignment]
        base = timings["duckdb SQL, same query"]
        print(f"\n{result['question']!r} over {result['rows']:,} rows (median of runs)")
        print(f"{'path':<36} {'median (ms)':>12} {'vs duckdb':>10}")
        for name, seconds in timings.items():
            print(f"{name:<36} {seconds * 1000:>12.1f} {seconds / base:>9.1f}x")
        shape = timings["agentops shape path (with chart)"]
        verdict = "meets" if shape < TARGET_SECONDS else "MISSES"
        print(f"shape path {verdict} the {TARGET_SECONDS:g} s target for a grouped question over 1M rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print_table(run(args.rows, args.repeats))


if __name__ == "__main__":
    main()
