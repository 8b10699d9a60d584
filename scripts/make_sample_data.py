"""Write the sample sales data to data/sales.csv (deterministic: the same seed gives the same file).

    .venv/bin/python scripts/make_sample_data.py [--out data/sales.csv] [--seed 2026]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentops.backends.sales_data import SEED, write_sales_csv  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "sales.csv")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    count = write_sales_csv(args.out, args.seed)
    print(f"wrote {count} rows to {args.out}")


if __name__ == "__main__":
    main()
