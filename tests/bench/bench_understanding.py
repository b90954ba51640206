"""Query understanding against its table (tests/data/query_understanding.tsv): the share of queries
parsed as intended (target >= 90 %) and the traps turned into filters (target 0).

Run: ``make bench-understanding`` (or ``python tests/bench/bench_understanding.py [-v]``)."""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from search.understand import Understood, understand

TABLE = Path(__file__).resolve().parents[1] / "data" / "query_understanding.tsv"
TODAY = date(2024, 3, 15)
PLACES = (
    "Paris",
    "France",
    "Berlin",
    "Germany",
    "New York",
    "Nice",
    "Barcelona",
    "Spain",
    "Madrid",
    "Munich",
    "Lyon",
)


@dataclass(frozen=True)
class Row:
    lang: str
    query: str
    text: str
    after: date | None
    before: date | None
    place: str | None
    trap: bool

    def expected(self) -> Understood:
        return Understood(
            text=self.text if self.text or self.found else self.query,
            date_from=self.after,
            date_to=self.before,
            place=self.place,
        )

    @property
    def found(self) -> bool:
        return bool(self.after or self.before or self.place)


def read_table(path: Path = TABLE) -> list[Row]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    rows = []
    for record in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        rows.append(
            Row(
                lang=record["lang"],
                query=record["query"],
                text=record["text"],
                after=date.fromisoformat(record["after"]) if record["after"] else None,
                before=date.fromisoformat(record["before"]) if record["before"] else None,
                place=record["place"] or None,
                trap=record["kind"] == "trap",
            )
        )
    return rows


def as_intended(row: Row, got: Understood) -> bool:
    want = row.expected()
    return (got.text, got.date_from, got.date_to, got.place) == (
        want.text,
        want.date_from,
        want.date_to,
        want.place,
    )


def main(argv: list[str]) -> int:
    rows = read_table()
    verbose = "-v" in argv
    good = traps = 0
    start = time.perf_counter()
    for row in rows:
        got = understand(row.query, PLACES, TODAY)
        ok = as_intended(row, got)
        good += ok
        traps += row.trap and got.found
        if verbose or not ok:
            mark = "ok  " if ok else "MISS"
            summary = got.summary() or "nothing understood"
            print(f"{mark} [{row.lang}] {row.query!r} -> text {got.text!r}; {summary}")
    ms = (time.perf_counter() - start) * 1000 / len(rows)
    n_traps = sum(r.trap for r in rows)
    print(f"parsed as intended: {good}/{len(rows)} = {100 * good / len(rows):.1f} % (target >= 90 %)")
    print(f"traps turned into filters: {traps}/{n_traps} (target 0)")
    print(f"mean time per query: {ms:.1f} ms (first query loads dateparser)")
    return 0 if good >= 0.9 * len(rows) and traps == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
