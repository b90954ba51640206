"""The query language: one text, or a weighted sum of text and image terms.

Grammar (the same structure is built directly from Python with :class:`Query` and :class:`Term`)::

    query      := plain_text | composite
    plain_text := any text without a double quote that is not made only of image references
                  -> ONE text term, taken literally ("beach - people" is one text); also any
                  text with quotes that does not parse as a composite and names no image
                  (`"golden retriever" puppy`, an unclosed quote): its quotes are dropped
    composite  := [sign] term { sign term }
    sign       := "+" | "-"
    term       := [weight ":"] atom | place
    place      := 'place:' ( '"' text '"' | word )   a restriction, not a vector: only photos taken
                  in that city, region or country (like --place); "+" only, one per query
    words      := 'text:' ( '"' text '"' | word )   words only: photos whose recognised text (OCR)
                  holds all these words; alone it ranks by the text match, with other terms it
                  restricts them; "+" only, one per query (search/text_terms.py)
    weight     := decimal number: 2, 0.5, .25
    atom       := '"' text '"'          a text; \\" and \\\\ escape inside
                | "#" digits             an indexed photo, by id
                | "@" path | '@"' path '"'   an image file (an indexed one reuses its stored vector)
                | path ending in an image extension (.jpg .jpeg .png .webp .gif .bmp .tif .tiff
                  .heic .heif .avif), without spaces      an image file

Examples: ``"beach" - "people"``, ``photo.jpg + "at night"``, ``2:"sunset" + "beach"``,
``#42 - 0.5:"snow"``, ``"beach" + place:"Nice"``, ``text:"invoice 2023"``, ``dog on a beach``. Each
term's embedding is L2-normalised, multiplied by its signed weight, summed, and the sum is re-normalised.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from indexer.core.errors import QueryError
from indexer.core.imaging import is_image_name

if TYPE_CHECKING:
    from PIL import Image

MAX_QUERY_CHARS = 4096
MAX_TERMS = 32
MIN_WEIGHT = 1e-6
MAX_WEIGHT = 1e6

_WEIGHT = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*:")
_PHOTO_ID = re.compile(r"#(\d{1,18})(?![^\s+\-\"])")
PLACE_PREFIX = "place:"
TEXT_PREFIX = "text:"

ImageValue = Union[str, int, "Image.Image"]


class QuerySyntaxError(QueryError):
    """A query that is not the composite syntax (quotes used another way fall back to plain text)."""


class TermKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"


@dataclass(frozen=True)
class Term:
    """One addend of a query. ``value``: the text; or, for an image, a file path (str), an indexed
    photo id (int) or an in-memory PIL image. ``weight`` is signed (negative terms subtract)."""

    kind: TermKind
    value: str | int | Image.Image
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TermKind):
            object.__setattr__(self, "kind", TermKind(self.kind))
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise QueryError(f"a term weight must be a number, not {self.weight!r}")
        if not math.isfinite(self.weight) or not (
            self.weight == 0 or MIN_WEIGHT <= abs(self.weight) <= MAX_WEIGHT
        ):
            raise QueryError(f"a term weight must be 0 or between {MIN_WEIGHT:g} and {MAX_WEIGHT:g} in size")
        object.__setattr__(self, "weight", float(self.weight))
        if self.kind is TermKind.TEXT:
            if not isinstance(self.value, str) or not self.value.strip():
                raise QueryError("a text term must not be empty")
        elif isinstance(self.value, bool) or not (
            isinstance(self.value, str | int) or _is_pil_image(self.value)
        ):
            raise QueryError(f"an image term needs a path, a photo id or an image, not {self.value!r}")
        elif isinstance(self.value, str) and not self.value.strip():
            raise QueryError("an image term needs a non-empty path")

    @classmethod
    def text(cls, text: str, weight: float = 1.0) -> Term:
        return cls(TermKind.TEXT, text, weight)

    @classmethod
    def image(cls, image: str | int | Image.Image, weight: float = 1.0) -> Term:
        return cls(TermKind.IMAGE, image, weight)

    def to_syntax(self, first: bool) -> str:
        """This term in the query language, with its sign (no sign for a positive first term)."""
        sign = "-" if self.weight < 0 else "+"
        magnitude = abs(self.weight)
        prefix = "" if magnitude == 1.0 else f"{_format_number(magnitude)}:"
        body = _atom_syntax(self)
        if first:
            return f"- {prefix}{body}" if sign == "-" else f"{prefix}{body}"
        return f"{sign} {prefix}{body}"


@dataclass(frozen=True)
class Query:
    """A parsed query: a tuple of terms, a place it is restricted to (or None), and words its photos'
    recognised text must hold (or None); the terms may be empty only when there are words."""

    terms: tuple[Term, ...]
    place: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        if self.text is not None:
            if not isinstance(self.text, str) or not self.text.split():
                raise QueryError('a text: term names the words to find, e.g. text:"invoice 2023"')
            object.__setattr__(self, "text", " ".join(self.text.split()))
        if not terms and self.text is None:
            if self.place:
                raise QueryError(
                    f'place:"{self.place}" only narrows a search; say what to look for too, '
                    f'e.g. "beach" + place:"{self.place}"'
                )
            raise QueryError("the query is empty; type some words or give a photo")
        if self.place is not None:
            if not isinstance(self.place, str) or not self.place.strip():
                raise QueryError("a place term names a city, region or country")
            object.__setattr__(self, "place", " ".join(self.place.split()))
        if len(terms) > MAX_TERMS:
            raise QueryError(f"a query may combine at most {MAX_TERMS} terms, this one has {len(terms)}")
        if not all(isinstance(t, Term) for t in terms):
            raise QueryError("a query is made of Term objects")
        object.__setattr__(self, "terms", terms)

    @classmethod
    def parse(cls, text: str) -> Query:
        return parse_query(text)

    @classmethod
    def of_text(cls, text: str) -> Query:
        return cls((Term.text(text),))

    def __str__(self) -> str:
        parts = [term.to_syntax(i == 0) for i, term in enumerate(self.terms)]
        if self.text is not None:
            parts.append(f"{'+ ' if parts else ''}{TEXT_PREFIX}{_quote(self.text)}")
        text = " ".join(parts)
        return text + (f" + place:{_quote(self.place)}" if self.place else "")


def parse_query(text: str) -> Query:
    """Parse the query language (module docstring) into a :class:`Query`; QueryError if malformed."""
    if not isinstance(text, str):
        raise QueryError(f"a query must be text, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is too long ({len(text)} characters; at most {MAX_QUERY_CHARS})")
    stripped = text.strip()
    if not stripped:
        raise QueryError("the query is empty; type some words or give a photo")
    if '"' not in stripped and not _only_image_refs(stripped) and not _names_words(stripped):
        return Query.of_text(stripped)
    try:
        parser = _Parser(stripped)
        terms = parser.terms()
        return Query(tuple(terms), place=parser.place, text=parser.words)
    except QuerySyntaxError:
        if _names_an_image(stripped) or _WEIGHT.match(stripped.lstrip("+- ")) or _names_words(stripped):
            raise  # a composite with photos or a text: term in it: say what is wrong with it
        # Quotes used as in a web search (`"golden retriever" puppy`, an unclosed quote): one text.
        plain = " ".join(stripped.replace('"', " ").split())
        if not plain:
            raise
        return Query.of_text(plain)


def _names_an_image(text: str) -> bool:
    """Whether any token outside double quotes is an image reference (#id, @path, photo.jpg)."""
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    tokens = (_WEIGHT.sub("", t, count=1).lstrip("+-") for t in outside.split())
    return any(t.startswith("@") or _is_image_ref(t) for t in tokens if t)


def _names_words(text: str) -> bool:
    """Whether a term outside double quotes starts with text: (a words-only term)."""
    outside = re.sub(r'"(?:[^"\\]|\\.)*"', " ", text)
    return any(t.lstrip("+-").startswith(TEXT_PREFIX) for t in outside.split())


def _only_image_refs(text: str) -> bool:
    tokens = [t for t in text.split() if t not in ("+", "-")]
    return bool(tokens) and all(_is_image_ref(_WEIGHT.sub("", t, count=1).lstrip("+-")) for t in tokens)


def _is_image_ref(token: str) -> bool:
    if token.startswith("@") and len(token) > 1:
        return True
    if _PHOTO_ID.fullmatch(token):
        return True
    return is_image_name(token) and len(token) > len(Path(token).suffix)


class _Parser:
    """Recursive-descent parser over the characters of a composite query."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.place: str | None = None
        self.words: str | None = None

    def terms(self) -> list[Term]:
        out: list[Term] = []
        sign = self._sign(optional=True)
        while True:
            self._skip_space()
            if self.text.startswith(PLACE_PREFIX, self.pos):
                self._place(sign)
            elif self.text.startswith(TEXT_PREFIX, self.pos):
                self._words(sign)
            else:
                out.append(self._term(sign))
            self._skip_space()
            if self.pos >= len(self.text):
                return out
            sign = self._sign(optional=False)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _sign(self, optional: bool) -> float:
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] in "+-":
            sign = -1.0 if self.text[self.pos] == "-" else 1.0
            self.pos += 1
            return sign
        if optional:
            return 1.0
        raise QuerySyntaxError(
            f"expected + or - between query terms at character {self.pos + 1}; "
            'put text in double quotes when combining terms, e.g. "beach" - "people"'
        )

    def _term(self, sign: float) -> Term:
        self._skip_space()
        weight = 1.0
        match = _WEIGHT.match(self.text, self.pos)
        if match:
            weight = float(match.group(1))
            self.pos = match.end()
            self._skip_space()
        if self.pos >= len(self.text):
            raise QuerySyntaxError("the query ends where a term was expected")
        char = self.text[self.pos]
        if char == '"':
            return Term.text(self._quoted(), sign * weight)
        if char == "#":
            match = _PHOTO_ID.match(self.text, self.pos)
            if not match:
                raise QuerySyntaxError(f"expected a photo id after # at character {self.pos + 1}")
            self.pos = match.end()
            return Term.image(int(match.group(1)), sign * weight)
        if char == "@":
            self.pos += 1
            path = self._quoted() if self.text.startswith('"', self.pos) else self._bare()
            if not path.strip():
                raise QuerySyntaxError("expected an image path after @")
            return Term.image(path, sign * weight)
        start = self.pos
        token = self._bare()
        if not _is_image_ref(token):
            raise QuerySyntaxError(
                f"{token!r} (character {start + 1}) is neither quoted text nor an image path; "
                'put text in double quotes when combining terms, e.g. "beach" - "people"'
            )
        return Term.image(token, sign * weight)

    def _place(self, sign: float) -> None:
        if sign < 0:
            raise QueryError('a place can only narrow a search: use + place:"…", not - place:"…"')
        if self.place is not None:
            raise QueryError("a query names at most one place")
        self.pos += len(PLACE_PREFIX)
        name = self._quoted() if self.text.startswith('"', self.pos) else self._bare()
        if not name.strip():
            raise QueryError('expected a city, region or country after place:, e.g. place:"Nice"')
        self.place = name  # Query normalises its spaces

    def _words(self, sign: float) -> None:
        """``text:"…"``: malformed is a QueryError (never the plain-text fallback of other quotes)."""
        if sign < 0:
            raise QueryError('a text: term finds photos by their words: use + text:"…", not - text:"…"')
        if self.words is not None:
            raise QueryError('a query has at most one text: term; put all the words in it, e.g. text:"a b"')
        self.pos += len(TEXT_PREFIX)
        try:
            words = self._quoted() if self.text.startswith('"', self.pos) else self._bare()
        except QuerySyntaxError:
            raise QueryError('the double quote after text: is not closed, e.g. text:"invoice 2023"') from None
        if not words.split():
            raise QueryError('expected the words to find after text:, e.g. text:"invoice 2023"')
        self.words = words  # Query normalises its spaces

    def _quoted(self) -> str:
        assert self.text[self.pos] == '"'
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text) and self.text[self.pos + 1] in '"\\':
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(chars)
            chars.append(char)
            self.pos += 1
        raise QuerySyntaxError("a double quote is not closed in the query")

    def _bare(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace() and self.text[self.pos] != '"':
            self.pos += 1
        token = self.text[start : self.pos]
        # `photo.jpg+"at night"`: give a trailing operator back to the parser.
        if len(token) > 1 and token[-1] in "+-" and _is_image_ref(token[:-1]):
            self.pos -= 1
            token = token[:-1]
        return token


def _atom_syntax(term: Term) -> str:
    if term.kind is TermKind.TEXT:
        assert isinstance(term.value, str)
        return _quote(term.value)
    if isinstance(term.value, int):
        return f"#{term.value}"
    if isinstance(term.value, str):
        return "@" + _quote(term.value)
    return "@<image>"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_number(value: float) -> str:
    """Shortest positional form that parses back to the same float (the grammar has no exponents)."""
    return np.format_float_positional(value, trim="-")


def _is_pil_image(value: object) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(value, Image.Image)
