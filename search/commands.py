"""Subcommands of ``dualens`` contributed by the search layer: search, similar, classify, index-info."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.core import options as opts
from indexer.core.errors import CollectionError, NotFoundError, UsageError
from indexer.core.text import printable
from search import duplicate_commands, prestart

if TYPE_CHECKING:
    from search.filters import Filters
    from search.hits import Hit
    from search.searcher import Searcher
    from search.understand import Understood

QUERY_HELP = (
    'text ("a dog on a beach"), or a composite of quoted texts and images with + and - and optional '
    'weights: \'"beach" - "people"\', \'photo.jpg + "at night"\', \'2:"sunset" + #42\''
)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add this package's subcommands. Each subparser sets ``func(args) -> int``."""
    p = subparsers.add_parser(
        "search", parents=[common], help="find photos by text or a composite query", description=QUERY_HELP
    )
    p.add_argument("query", help=QUERY_HELP)
    _add_result_options(p)
    p.add_argument(
        "--literal",
        action="store_true",
        help='take the query word for word: no dates or places read from it ("summer 2019", "in Paris")',
    )
    p.set_defaults(func=run_search, names_collection=True)

    p = subparsers.add_parser(
        "similar",
        parents=[common],
        help="find photos like a photo (indexed id or path, or any image file)",
    )
    p.add_argument("photo", help="an indexed photo's id or path, or any image file")
    _add_result_options(p)
    p.add_argument("--include-self", action="store_true", help="keep the photo itself in the results")
    p.set_defaults(func=run_similar, names_collection=True)

    p = subparsers.add_parser("classify", parents=[common], help="zero-shot label probabilities for a photo")
    p.add_argument("photo", help="an image file (or an indexed photo's id)")
    p.add_argument("--labels", required=True, help='comma-separated labels, e.g. "cat,dog,car"')
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--model",
        default=None,
        help="model directory or hub id (default: the collection's model, else the offline default)",
    )
    opts.add_backend(p)
    p.set_defaults(func=run_classify)

    p = subparsers.add_parser(
        "index-info", parents=[common], help="vector index type, memory size and measured recall@10"
    )
    opts.add_count(p, "--queries", high=100_000, default=100, help="sampled queries for recall (default 100)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_index_info, names_collection=True)

    duplicate_commands.register(subparsers, common)


def _add_result_options(p: argparse.ArgumentParser) -> None:
    from search.limits import MAX_K, MAX_OFFSET

    opts.add_paging(p, max_k=MAX_K, max_offset=MAX_OFFSET)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--folder", default=None, help="only photos below this folder (absolute or root-relative)")
    p.add_argument("--after", default=None, help="taken on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD)")
    p.add_argument("--before", default=None, help="taken on or before DATE (YYYY, YYYY-MM or YYYY-MM-DD)")
    p.add_argument(
        "--type", dest="types", action="append", default=[], help="file type, e.g. jpg (repeat, or a,b)"
    )
    p.add_argument(
        "--place", default=None, help="only photos taken in this city, region or country (from their GPS)"
    )
    p.add_argument("--min-score", type=float, default=None, help="minimum cosine similarity, -1 to 1")
    p.add_argument(
        "--sort",
        choices=("relevance", "date"),
        default="relevance",
        help="date: newest first (date taken, else file date); a text query keeps its good and strong hits",
    )
    p.add_argument(
        "--min-match",
        choices=("good", "strong"),
        default=None,
        help="text queries: only hits of this match band or better (docs/usage.md, match bands)",
    )
    p.add_argument(
        "--model", default=None, help="model to embed the query with (must be the collection's; default it)"
    )
    opts.add_backend(p)
    opts.add_precision(p, "fp32 or int8 text tower (must be the collection's precision; default it)")


def _filters(args: argparse.Namespace) -> Filters:
    from search.filters import Filters, parse_date

    types = tuple(t for raw in args.types for t in raw.split(",") if t.strip())
    return Filters(
        folder=args.folder,
        date_from=parse_date(args.after, end=False),
        date_to=parse_date(args.before, end=True),
        file_types=types,
        min_score=args.min_score,
        min_match=getattr(args, "min_match", None),
        place=getattr(args, "place", None),
    )


def _open_searcher(args: argparse.Namespace, *, text: bool = False) -> Searcher:
    from indexer.core.models import DualEncoder
    from search.searcher import Searcher

    precision = getattr(args, "precision", None)
    model = getattr(args, "model", None)
    encoder = DualEncoder(model, backend=args.backend, precision=precision or "fp32") if model else None
    settings = args.settings
    searcher = Searcher.open(
        settings.data_dir,
        encoder=encoder,
        allow_external_files=True,
        backend=settings.backend,
        prefetch_text=text,
        db_url=settings.db_url,
        precision=precision,
    )
    folder = getattr(args, "folder", None)
    if folder and not searcher.has_folder(folder):
        searcher.close()
        raise NotFoundError(
            f"no indexed photos in the folder {printable(folder)} (see `dualens check` for the roots)"
        )
    return searcher


def _print_hits(
    args: argparse.Namespace, hits: list[Hit], query: str, understood: Understood | None = None
) -> int:
    from search.render import format_hits, print_json

    if understood is not None:  # on stderr: --json output stays one JSON document
        print(f"understood: {understood.summary()}", file=sys.stderr)
    if args.json:
        page = {"query": query, "k": args.k, "offset": args.offset, "hits": [h.to_json() for h in hits]}
        if understood is not None:
            page["understood"] = understood.to_json()
        print_json(page)
    else:
        print(format_hits(hits))
    return 0


def _is_photo_id(ref: str) -> bool:
    """ASCII digits only: "²" and other Unicode digits are file names, not photo ids."""
    return ref.isascii() and ref.isdigit()


def run_search(args: argparse.Namespace) -> int:
    from search.query import TermKind, parse_query

    query = parse_query(args.query)  # a syntax error is reported before anything is opened
    text = any(t.kind is TermKind.TEXT for t in query.terms)
    if text and getattr(args, "model", None) is None:
        prestart.hint(" ".join(str(t.value) for t in query.terms if t.kind is TermKind.TEXT))
        prestart.start(args.settings)  # the text tower loads while the query path's libraries import
    filters = _filters(args)
    with _open_searcher(args, text=text) as searcher:
        hits, meant = searcher.search_understood(
            query, k=args.k, offset=args.offset, filters=filters, sort=args.sort, literal=args.literal
        )
    return _print_hits(args, hits, str(query), meant.understood)


def run_similar(args: argparse.Namespace) -> int:
    filters = _filters(args)
    ref = args.photo.strip()
    exclude = not args.include_self
    with _open_searcher(args) as searcher:
        if _is_photo_id(ref):
            hits = searcher.similar(int(ref), args.k, args.offset, filters, exclude, args.sort)
        else:
            try:
                hits = searcher.similar(ref, args.k, args.offset, filters, exclude, args.sort)
            except NotFoundError:  # not indexed: embed the file itself
                hits = searcher.search_image(ref, args.k, args.offset, filters, args.sort)
    return _print_hits(args, hits, ref)


def run_classify(args: argparse.Namespace) -> int:
    from indexer.core.models import DualEncoder
    from search.classify import classify_image, clean_labels
    from search.images import check_readable, load_image
    from search.render import format_labels, print_json
    from search.searcher import Searcher

    labels = clean_labels(args.labels)
    ref = args.photo.strip()
    results = None
    if args.model is None:
        try:
            searcher = Searcher.open(
                args.settings.data_dir,
                allow_external_files=True,
                backend=args.settings.backend,
                db_url=args.settings.db_url,
            )
        except CollectionError:
            searcher = None
        if searcher is not None:
            with searcher:
                if searcher.stats().model_id:
                    results = searcher.classify(int(ref) if _is_photo_id(ref) else ref, labels)
    if results is None:
        if _is_photo_id(ref) and not Path(ref).exists():
            raise UsageError(f"photo id {ref} needs a collection; give an image file instead")
        image = load_image(check_readable(ref, [], allow_external=True))
        results = classify_image(DualEncoder(args.model or "default", backend=args.backend), image, labels)
    if args.json:
        print_json({"photo": ref, "labels": [{"label": lab, "probability": p} for lab, p in results]})
    else:
        print(format_labels(results))
    return 0


def run_index_info(args: argparse.Namespace) -> int:
    from search.render import format_report, print_json, report_json
    from search.searcher import Searcher

    if args.queries < 1:
        raise UsageError("--queries must be at least 1")
    with Searcher.open(args.settings.data_dir, db_url=args.settings.db_url) as searcher:
        report = searcher.index_report(n_queries=args.queries)
    path = args.settings.paths.vector_index
    size = path.stat().st_size if path.exists() else None
    if args.json:
        print_json(report_json(report, size))
    else:
        print(format_report(report, size))
    return 0
