"""Terminal output of the search commands: aligned tables for people, JSON for programs."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from indexer.core.text import printable
from search.hits import Hit
from search.searcher import IndexReport

_SURROGATES = re.compile("[\ud800-\udfff]")


NO_GOOD_MATCHES = "No good matches: nonsense queries find photos as close as these (closest shown)."
WEAKER_MATCHES = "-- weaker matches: no closer than what nonsense queries find --"


def format_hits(hits: Sequence[Hit]) -> str:
    """rank, match band (text queries), cosine, logit, probability, date and path, one aligned row
    per hit; a divider above the first weak match, and a "no good matches" line when all are weak."""
    if not hits:
        return "No photos match."
    banded = any(h.relevance for h in hits)
    worded = any(h.text_words for h in hits)  # matched by the words in them (OCR): those words shown
    header = ("#", *(("match",) if banded else ()), "cosine", "logit", "prob", "date")
    header += (*(("words",) if worded else ()), "path")
    rows = [
        (
            str(h.rank),
            *((h.relevance,) if banded else ()),
            f"{h.cosine:.3f}",
            f"{h.logit:.2f}",
            _percent(h.probability),
            h.date.strftime("%Y-%m-%d"),
            *((printable(" ".join(h.text_words)),) if worded else ()),
            printable(h.path),
        )
        for h in hits
    ]
    table = _table(header, rows, right_aligned=(0, 2, 3, 4) if banded else (0, 1, 2, 3)).split("\n")
    if not banded:
        return "\n".join(table)
    weak = [h.relevance == "weak" for h in hits]
    if all(weak):
        return "\n".join([NO_GOOD_MATCHES, *table])
    if any(weak):
        first = weak.index(True)
        table.insert(first + 1, WEAKER_MATCHES)  # + 1: the header line
    return "\n".join(table)


def format_labels(results: Sequence[tuple[str, float]]) -> str:
    header = ("label", "prob")
    rows = [(printable(label), _percent(p)) for label, p in results]
    return _table(header, rows, right_aligned=(1,))


def format_report(report: IndexReport, file_size: int | None) -> str:
    d = report.description
    lines = [
        ("index", d.label),
        ("vectors", f"{d.ntotal:,} x {d.dim} (database: {report.n_indexed:,} indexed photos)"),
        ("memory", _bytes(d.memory_bytes)),
        ("recall@10", f"{report.recall_at_10:.3f} against exact search ({report.n_queries} sampled queries)"),
        ("latency", f"p50 {report.latency_ms_p50:.2f} ms a query in the index (top 10)"),
        ("generation", str(d.generation)),
    ]
    if d.trained_on is not None:
        lines.append(("trained on", f"{d.trained_on:,} vectors"))
    if file_size is not None:
        lines.append(("file", _bytes(file_size)))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)


def report_json(report: IndexReport, file_size: int | None) -> dict[str, Any]:
    d = report.description
    return {
        "kind": d.kind.value,
        "description": d.label,
        "ntotal": d.ntotal,
        "dim": d.dim,
        "n_indexed": report.n_indexed,
        "memory_bytes": d.memory_bytes,
        "nlist": d.nlist,
        "nprobe": d.nprobe,
        "trained_on": d.trained_on,
        "recall_at_10": report.recall_at_10,
        "recall_queries": report.n_queries,
        "latency_ms_p50": report.latency_ms_p50,
        "pq_bytes": d.pq_bytes,
        "on_disk": d.on_disk,
        "generation": d.generation,
        "file_bytes": file_size,
    }


def print_json(payload: Any, out: TextIO | None = None) -> None:
    """JSON with non-ASCII text as is; the undecodable bytes of a file name (lone surrogates, which
    no UTF-8 output can hold) as ``\\udcXX`` escapes, which JSON readers turn back into the name."""
    stream = out or sys.stdout
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    stream.write(_SURROGATES.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_aligned: Sequence[int]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    last = len(header) - 1

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            if i == last:
                parts.append(cell)
            elif i in right_aligned:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _percent(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.0005 else "<0.1%"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"
