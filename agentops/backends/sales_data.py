"""The sample sales data (data/sales.csv): a year of orders, deterministic from a fixed seed.

Revenue grows through the year with a fourth-quarter lift, and the Central region clearly underperforms.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

SEED = 2026
YEAR = 2026
REGIONS = {"North": 1.0, "South": 0.9, "East": 1.1, "West": 0.95, "Central": 0.5}
"""Region -> demand factor; Central is the underperformer."""
PRODUCTS = {"Laptop": 1199.0, "Monitor": 329.0, "Keyboard": 79.0, "Mouse": 39.0, "Headset": 149.0,
            "Webcam": 89.0, "Docking Station": 229.0, "Tablet": 549.0}
"""Product -> list price."""
POPULARITY = np.array([0.10, 0.14, 0.16, 0.18, 0.12, 0.10, 0.08, 0.12])
COLUMNS = ("date", "region", "product", "units", "unit_price", "revenue")


def sales_rows(seed: int = SEED) -> list[tuple[str, str, str, int, float, float]]:
    """About 4,500 orders: each day, each region places a few orders; demand grows ~6% a month, more in Q4."""
    rng = np.random.default_rng(seed)
    names, prices = list(PRODUCTS), list(PRODUCTS.values())
    rows = []
    day = dt.date(YEAR, 1, 1)
    while day.year == YEAR:
        month_factor = 1 + 0.06 * (day.month - 1) + (0.2 if day.month >= 10 else 0.0)
        for region, demand in REGIONS.items():
            for _ in range(int(rng.poisson(2 * demand * month_factor))):
                product = int(rng.choice(len(names), p=POPULARITY))
                units = 1 + int(rng.poisson(3))
                discount = float(rng.choice([0.0, 0.0, 0.05, 0.10]))
                unit_price = round(prices[product] * (1 - discount), 2)
                rows.append((day.isoformat(), region, names[product], units, unit_price,
                             round(units * unit_price, 2)))
        day += dt.timedelta(days=1)
    return rows


def write_sales_csv(path: Path, seed: int = SEED) -> int:
    """Write the sample to `path` (parents created); returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sales_rows(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for date, region, product, units, unit_price, revenue in rows:
            writer.writerow((date, region, product, units, f"{unit_price:.2f}", f"{revenue:.2f}"))
    return len(rows)


DECLARATIONS = """\
# How each measure of sales.csv aggregates when a question groups rows. Undeclared numeric columns are summed.
measures:
  units: sum
  revenue: sum
  unit_price: avg
# How columns read in answers, tables and charts (money: 2 decimals; integer; number; percent; date; text).
# Undeclared columns go by their type.
formats:
  revenue: money
  unit_price: money
  units: integer
"""
"""data/sales.yaml: unit prices are averaged, not summed; money reads with 2 decimals."""


def ensure_sample_data(root: Path) -> Path | None:
    """Write <root>/data/sales.csv unless it exists, with its sales.yaml beside it (unless that exists); the CSV's
    path when written, or None. Safe to call repeatedly."""
    path = root / "data" / "sales.csv"
    if path.exists():
        return None
    write_sales_csv(path)
    declarations = path.with_suffix(".yaml")
    if not declarations.exists():
        declarations.write_text(DECLARATIONS)
    return path
