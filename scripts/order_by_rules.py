"""Count the golds whose row order counts under one ORDER BY rule and not the other.

    python scripts/order_by_rules.py path/to/test.parquet   # SQL-R1's 1,000 RL golds (SynSQL-Complex-5K)

``anywhere`` is SQL-R1's and the Spider test-suite's rule (the text "order by" in the gold);
``top_level`` is the outermost query's ORDER BY (``reward.order_by`` in docs/fidelity.md).
"""

from __future__ import annotations

import re
import sys

from sqlr1.mcp_server.method.compare import order_matters_for
from sqlr1.training.data import iter_synsql


def main(path: str) -> None:
    from pathlib import Path

    p = Path(path)
    golds = [ex.gold_sql for ex in iter_synsql(p.parent, data_file=p.name)]
    anywhere = [order_matters_for(re.sub(r"\s+", " ", g), rule="official") for g in golds]
    top = [order_matters_for(g, "sqlite") for g in golds]
    differ = [g for g, a, t in zip(golds, anywhere, top, strict=True) if a != t]
    windows = sum(bool(re.search(r"\bover\s*\(", g, re.IGNORECASE)) for g in differ)
    print(f"{len(golds)} golds: order counts for {sum(anywhere)} (anywhere) vs {sum(top)} (top_level)")
    print(f"{len(differ)} differ, {windows} of them with a window function (OVER (...ORDER BY...))")


if __name__ == "__main__":
    main(sys.argv[1])
