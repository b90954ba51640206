"""Query understanding: the when and the where of a plain text query become filters.

``understand("dog on the beach in summer 2019", places, today)`` -> text "dog on the beach", date range
2019-06-01..2019-08-31. Dates come from ``dateparser`` (its search and its language data: month names,
"yesterday", "vor 3 Tagen"...) for English, German, French and Spanish; seasons, Christmas and "last /
this" week, month, year, season come from the small tables below (dateparser has none of them). Places
are the collection's own place facets (cities and countries): a name the collection does not have stays
text.

Invariants:
- Conservative: a phrase becomes a filter only when it is clearly a date or a place; anything else stays
  in the text, word for word (nothing is dropped but the understood phrases and the prepositions and
  articles that tie them to the query, e.g. "in" of "in summer 2019").
- A month name alone ("may", "march", "mars") is text; a season or "christmas" alone is text (they are
  visual); a bare year (1900-2100) is a date only when it ends the query or follows a preposition, and
  never next to a title word ("the novel 1984", "1984 book cover"); a place needs a preposition before
  it ("in", "to", "over", "à", "en", "nach"...) and nothing but an end, a connector, "and" or a date after
  it, unless it is the whole query ("Paris Hilton", "new york strip steak", "walk in nice weather"
  stay text).
- A place is a proper noun: it is understood only when the query writes it with a capital letter
  ("sunset in Paris", "atardecer en PARÍS"), so that collection places that are common words ("Orange",
  "Mobile", "Reading", "China") never take an ordinary word ("goldfish in orange") away from the text.
- dateparser's phrases are taken only when they are clearly a date: a month name with a year ("May 2019",
  "14. Juli 2019") or a number of days / weeks / months / years ago ("vor 3 Tagen"); never a bare number
  next to a year ("iphone 11 in 2019") or a time of day. Full numeric dates are read here, not by
  dateparser: year-month-day, day.month.year, and day/month/year (month/day/year in an English query
  unless the first number cannot be a month);
  an impossible one ("2019-13-01") stays text. A long query (over 200 characters or 12 numbers) is not
  handed to dateparser (its search time grows with the numbers); its plain years are still read.
- A "before" / "after" bound past the calendar's ends ("before 0001-01-01") leaves the phrase as text.
- Seasons are meteorological, northern hemisphere (winter Y = December Y to the end of February Y+1);
  Christmas is December 24-26; "last X" is the most recent X that has ended before today.
- Only the first date phrase and the first place are understood; a second one stays in the text, except
  a second date joined to the first by a range word ("between 2018 and 2020", "von Mai bis Juni 2019"
  with both years, "desde 2018 hasta 2020"): the two make one range (in either order after "between",
  "zwischen", "entre"). "before / after / since X" (any of
  the four languages) leaves the range open on one side.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from search.filters import Filters
from search.query import Query, Term, TermKind

LANGUAGES = ("en", "de", "fr", "es")

_SEASONS: dict[str, tuple[str, ...]] = {
    "spring": ("spring", "frühling", "frühjahr", "printemps", "primavera"),
    "summer": ("summer", "sommer", "été", "ete", "verano"),
    "autumn": ("autumn", "fall", "herbst", "automne", "otoño", "otono"),
    "winter": ("winter", "hiver", "invierno"),
}
_SEASON_MONTHS = {"spring": 3, "summer": 6, "autumn": 9, "winter": 12}  # first month of each
_CHRISTMAS = ("christmas", "xmas", "weihnachten", "noël", "noel", "navidad")
_PERIODS: dict[str, tuple[str, ...]] = {
    "week": ("week", "woche", "semaine", "semana"),
    "month": ("month", "monat", "mois", "mes"),
    "year": ("year", "jahr", "année", "annee", "año", "ano"),
}
_LAST_BEFORE = ("last", "past", "previous", "letzte", "letzten", "letztes", "letzter", "vergangene",
                "vergangenen", "vergangenes", "vorige", "vorigen", "voriges")  # fmt: skip
_THIS_BEFORE = ("this", "diese", "diesen", "dieses", "diesem", "cet", "cette", "este", "esta")
_LAST_AFTER = ("dernier", "dernière", "derniere", "passé", "passée", "passe", "pasado", "pasada")
_ARTICLE = r"(?:(?:the|der|die|das|le|la|les|el|los|las)\s+|l['’]\s*)?"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# tie words taken out with an understood phrase right after them
_CONNECTORS = _words(
    "in on at from during of im am an um von vom aus während zu zum en à a au aux de du des d' del le la l' "
    "el the pendant durante por"
)
_BEFORE = _words("before vor avant antes")
_AFTER = _words("after nach après apres después despues")
_SINCE = _words("since seit depuis desde")
_PLACE_PREPOSITIONS = _words("in at near around to over im bei nahe nach à a au en dans près cerca")
_RANGE_OPEN = _words("between zwischen entre desde depuis seit")  # "between 2018 and 2020"
_JOINERS = _words("and to until till und bis et à au jusqu'à jusqu'au y a hasta")
_RANGE_JOIN = re.compile(r"\s*(?:and|to|until|till|und|bis|et|à|au|jusqu'à|jusqu'au|y|a|hasta|-|–)\s*", re.I)
_TITLE_WORDS = _words(
    "book novel film movie album song poster cover roman buch livre film película pelicula libro novela "
    "canción cancion chanson lied"
)
_DAY_WORDS = _words("yesterday today gestern heute vorgestern aujourd'hui avant-hier ayer hoy anteayer")
_AGO = re.compile(r"\b(ago|vor|il y a|hace)\b", re.IGNORECASE)
_FILLER = _words(
    "photos photo pictures picture pics images image fotos foto bilder bild aufnahmen imágenes imagenes "
    "my meine mes mis all alle toutes todas"
)
_YEAR = r"(?:19\d\d|20\d\d|2100)"
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)


@dataclass(frozen=True)
class Understood:
    """What a query said about when and where, and the visual description left.

    ``text`` is the query itself when nothing was understood; "" when the query was only a date and/or
    a place (then the photos are listed by date). ``phrases`` are the spans of the query taken out."""

    text: str
    date_from: date | None = None
    date_to: date | None = None
    place: str | None = None
    phrases: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.date_from or self.date_to or self.place)

    def summary(self) -> str:
        """``after 2019-06-01, before 2019-08-31, place Paris`` ("" when nothing was understood)."""
        parts = []
        if self.date_from:
            parts.append(f"after {self.date_from.isoformat()}")
        if self.date_to:
            parts.append(f"before {self.date_to.isoformat()}")
        if self.place:
            parts.append(f"place {self.place}")
        return ", ".join(parts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Understood:
        """The inverse of :meth:`to_json` (a service's answer read back by a client)."""
        return cls(
            text=str(data.get("text") or ""),
            date_from=date.fromisoformat(data["after"]) if data.get("after") else None,
            date_to=date.fromisoformat(data["before"]) if data.get("before") else None,
            place=data.get("place") or None,
            phrases=tuple(data.get("phrases") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "after": self.date_from.isoformat() if self.date_from else None,
            "before": self.date_to.isoformat() if self.date_to else None,
            "place": self.place,
            "phrases": list(self.phrases),
        }


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    first: date
    last: date
    joined: bool = False  # two dates joined by a range word: no "before" / "after" reading


def understand(
    text: str, places: Sequence[str] = (), today: date | None = None, *, dates: bool = True
) -> Understood:
    """The date range (unless ``dates`` is False) and place ``text`` names, and the rest of it (module
    docstring for the rules)."""
    today = today or date.today()
    stripped = " ".join(text.split())
    if not stripped:
        return Understood(text=stripped)
    removed: list[tuple[int, int]] = []
    date_from: date | None = None
    date_to: date | None = None
    span = _first_date(stripped, today) if dates else None
    if span is not None:
        start = _absorb_connectors(stripped, span.start)
        direction, start = (None, start) if span.joined else _direction(stripped, start)
        bounds = _bounds(span, direction)
        if bounds is not None:
            date_from, date_to = bounds
            removed.append((start, span.end))
    place = _place(stripped, places, removed)
    if place is not None:
        removed.append((place[1], place[2]))
    if not removed:
        return Understood(text=stripped)
    removed.sort()
    phrases = tuple(stripped[s:e].strip() for s, e in removed)
    rest = _rest(stripped, removed)
    return Understood(
        text=rest,
        date_from=date_from,
        date_to=date_to,
        place=place[0] if place else None,
        phrases=phrases,
    )


def _bounds(span: _Span, direction: str | None) -> tuple[date | None, date | None] | None:
    """The inclusive range ``span`` read with its direction word; None when a bound falls off the calendar
    ("before 0001-01-01", "after 9999-12-31")."""
    try:
        if direction == "before":
            return None, span.first - timedelta(days=1)
        if direction == "after":
            return span.last + timedelta(days=1), None
    except OverflowError:
        return None
    return span.first, None if direction == "since" else span.last


# ------------------------------------------------------------------ seasons, Christmas, last / this
def _alternatives(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_SEASON_WORDS = {w: name for name, words in _SEASONS.items() for w in words}
_PERIOD_WORDS = {w: name for name, words in _PERIODS.items() for w in words}
_UNIT = _alternatives([*_SEASON_WORDS, *_CHRISTMAS, *_PERIOD_WORDS])
_UNIT_AFTER = _alternatives([*_SEASON_WORDS, *_CHRISTMAS, *_PERIOD_WORDS, "an"])
_B, _E = r"(?<![\w'’])", r"(?![\w'’-])"
_MODIFIED_BEFORE = re.compile(
    rf"{_B}{_ARTICLE}(?P<mod>{_alternatives([*_LAST_BEFORE, *_THIS_BEFORE])})\s+(?P<unit>{_UNIT}){_E}",
    re.IGNORECASE,
)
_MODIFIED_AFTER = re.compile(
    rf"{_B}{_ARTICLE}(?P<unit>{_UNIT_AFTER})\s+(?P<mod>{_alternatives(_LAST_AFTER)}){_E}", re.IGNORECASE
)
_WITH_YEAR = re.compile(
    rf"{_B}{_ARTICLE}(?P<unit>{_alternatives([*_SEASON_WORDS, *_CHRISTMAS])})\s+(?:(?:of|de|del)\s+)?"
    rf"(?P<year>{_YEAR}){_E}",
    re.IGNORECASE,
)


def _first_date(text: str, today: date) -> _Span | None:
    """The first date phrase (a phrase of the tables above before one of dateparser's), joined with
    the next one when a range word joins them ("between 2018 and 2020", "von Mai 2019 bis Juni 2019")."""
    numeric = list(_NUMERIC_DATE.finditer(text))
    own = _own_dates(text, today) + [s for m in numeric if (s := _numeric_date(m, text, today))]
    masked = _mask(text, [(m.start(), m.end()) for m in numeric])  # dateparser never reads numeric dates
    parsed = _plain_years(masked)
    if parsed is None:
        parsed = _parsed_dates(masked, today) if _may_hold_date(masked) and _bounded(masked) else []
        parsed += [y for y in _year_spans(masked) if not any(_overlap(y, p) for p in parsed)]
    spans = sorted(own, key=lambda s: s.start)
    spans += [p for p in parsed if not any(_overlap(p, o) for o in own)]
    if not spans:
        return None
    first = spans[0]
    later = sorted((s for s in spans if s.start >= first.end), key=lambda s: s.start)
    if not later or not _RANGE_JOIN.fullmatch(text[first.end : later[0].start]):
        return first
    words = _words_before(text, first.start)
    opened = bool(words) and words[-1][0].lower() in _RANGE_OPEN
    opened = opened and not text[words[-1].end() : first.start].strip()
    if later[0].last < first.first and not opened:
        return first
    start = words[-1].start() if opened else first.start
    low, high = min(first.first, later[0].first), max(first.last, later[0].last)
    return _Span(start, later[0].end, low, high, joined=True)


def _overlap(a: _Span, b: _Span) -> bool:
    return a.start < b.end and b.start < a.end


def _mask(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the spans blanked out (offsets stay valid)."""
    chars = list(text)
    for s, e in spans:
        chars[s:e] = " " * (e - s)
    return "".join(chars)


_NUMERIC_DATE = re.compile(
    r"(?<![\w.:/-])(?:(?P<iy>\d{4})(?P<isep>[-/.])(?P<im>\d{1,2})(?P=isep)(?P<id>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2}))(?![\w:/-]|\.\d)"
)
# words that mark a German, French or Spanish query: its d/m/y dates are day first
_NOT_ENGLISH = _words(
    "der die das dem den ein eine im am um vom zum zur und von aus bei mit auf le la les un une du des au "
    "aux à en et de dans sur avec el los las una del y con sobre desde hasta"
)


def _numeric_date(match: re.Match[str], text: str, today: date) -> _Span | None:
    """The day a full numeric date names; None when there is no such day ("2019-13-01")."""
    if match["iy"]:
        year, month, day = int(match["iy"]), int(match["im"]), int(match["id"])
    else:
        year = int(match["y"])
        if len(match["y"]) == 2:
            year += 2000 if 2000 + year <= today.year else 1900
        day_first = match["sep"] == "." or any(w.lower() in _NOT_ENGLISH for w in _WORD.findall(text))
        first, second = int(match["a"]), int(match["b"])
        day, month = (first, second) if day_first or first > 12 else (second, first)  # 14/07/2019
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    return _Span(match.start(), match.end(), found, found)


_MAX_PARSED_CHARS, _MAX_PARSED_NUMBERS = 200, 12


def _bounded(text: str) -> bool:
    """Whether ``text`` is short enough for dateparser (its search time grows fast with the numbers)."""
    return len(text) <= _MAX_PARSED_CHARS and len(re.findall(r"\d+", text)) <= _MAX_PARSED_NUMBERS


def _year_spans(text: str) -> list[_Span]:
    """The plain years of ``text`` that :func:`_bare_year_is_date` takes (the first two: a range at most)."""
    spans: list[_Span] = []
    for match in _YEAR_TOKEN.finditer(text):
        if _bare_year_is_date(text, match.start(), match.end()):
            year = int(match[0])
            spans.append(_Span(match.start(), match.end(), date(year, 1, 1), date(year, 12, 31)))
            if len(spans) == 2:
                break
    return spans


def _own_dates(text: str, today: date) -> list[_Span]:
    """The season / Christmas / last-this period phrases, resolved against ``today``, in text order."""
    found: list[_Span] = []
    for pattern in (_MODIFIED_BEFORE, _MODIFIED_AFTER):
        for match in pattern.finditer(text):
            unit = match["unit"].lower()
            last = match["mod"].lower() not in _THIS_BEFORE
            resolved = _relative(unit, last, today)
            if resolved:
                found.append(_Span(match.start(), match.end(), *resolved))
    for match in _WITH_YEAR.finditer(text):
        first, end = _occurrence(match["unit"].lower(), int(match["year"]))
        found.append(_Span(match.start(), match.end(), first, end))
    return sorted(found, key=lambda s: s.start)


def _occurrence(unit: str, year: int) -> tuple[date, date]:
    """The season or Christmas of ``year`` (winter Y runs into Y+1)."""
    if unit in _CHRISTMAS:
        return date(year, 12, 24), date(year, 12, 26)
    month = _SEASON_MONTHS[_SEASON_WORDS[unit]]
    first = date(year, month, 1)
    end_year, end_month = (year + 1, 2) if month == 12 else (year, month + 2)
    return first, _month_end(end_year, end_month)


def _relative(unit: str, last: bool, today: date) -> tuple[date, date] | None:
    period = _PERIOD_WORDS.get(unit, "year" if unit == "an" else None)
    if period == "week":
        monday = today - timedelta(days=today.weekday()) - timedelta(days=7 if last else 0)
        return monday, monday + timedelta(days=6)
    if period == "month":
        year, month = (today.year, today.month)
        if last:
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return date(year, month, 1), _month_end(year, month)
    if period == "year":
        year = today.year - 1 if last else today.year
        return date(year, 1, 1), date(year, 12, 31)
    if unit in _SEASON_WORDS or unit in _CHRISTMAS:
        for year in range(today.year, today.year - 3, -1):
            first, end = _occurrence(unit, year)
            if (last and end < today) or (not last and first <= today):
                return first, end
    return None


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


# ------------------------------------------------------------------ dateparser
def _may_hold_date(text: str) -> bool:
    """Whether dateparser could find a date here that :func:`_plausible` accepts: every accepted phrase
    has a digit or is a day word, so other queries never load dateparser (a second of import time)."""
    return any(c.isdigit() for c in text) or any(w.lower() in _DAY_WORDS for w in _WORD.findall(text))


_YEAR_TOKEN = re.compile(rf"(?<![\w.:/-]){_YEAR}(?![\w.:/-])")
# words before a year that are never a month name: a year after one of them is the whole date
_BEFORE_A_PLAIN_YEAR = _words(
    "in im from since seit depuis desde en between zwischen entre and und et y to bis hasta before after "
    "vor nach avant après apres antes después despues von aus during während pendant durante"
)


def _plain_years(text: str) -> list[_Span] | None:
    """The years of a text whose only digits are years, each alone or after one of the words above ("dog
    in 2019", "between 2018 and 2020"): what dateparser would find there, without loading it (its first
    search compiles its locales for about a second). None when dateparser must look (any other digit, a
    day word, or a word before a year that could be a month: "Mai 2019", "mayo de 2019")."""
    years = list(_YEAR_TOKEN.finditer(text))
    digits = sum(c.isdigit() for c in text)
    if not years or digits != 4 * len(years) or any(w.lower() in _DAY_WORDS for w in _WORD.findall(text)):
        return None
    spans = []
    for match in years:
        before = _words_before(text, match.start())
        if before and before[-1][0].lower() not in _BEFORE_A_PLAIN_YEAR:
            return None
        if _bare_year_is_date(text, match.start(), match.end()):
            year = int(match[0])
            spans.append(_Span(match.start(), match.end(), date(year, 1, 1), date(year, 12, 31)))
    return spans


def _parsed_dates(text: str, today: date) -> list[_Span]:
    """The dates dateparser finds that pass the conservative checks, as days, months or years."""
    from dateparser.search import search_dates

    settings = {"RELATIVE_BASE": datetime(today.year, today.month, today.day), "PREFER_DATES_FROM": "past"}
    found = search_dates(text, languages=list(LANGUAGES), settings=settings) or []
    spans: list[_Span] = []
    cursor = 0
    for phrase, _ in found:
        start = text.find(phrase, cursor)
        if start < 0:
            continue
        cursor = start + len(phrase)
        start, end = _trim(text, start, start + len(phrase))
        start = _after_direction_word(text, start, end)
        if end <= start or not _plausible(text, start, end):
            continue
        resolved = _period_of(text[start:end], today)
        if resolved is not None:
            spans.append(_Span(start, end, *resolved))
    return spans


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without tie words at either end ("in May 2019" -> "May 2019", "gestern im" -> "gestern")."""
    words = [m for m in _WORD.finditer(text, start, end)]
    while words and words[0][0].lower() in _CONNECTORS | _JOINERS:
        words.pop(0)
    while words and words[-1][0].lower() in _CONNECTORS:
        words.pop()
    if not words:
        return start, start
    return words[0].start(), words[-1].end() + (1 if text[words[-1].end() : end].startswith(".") else 0)


def _after_direction_word(text: str, start: int, end: int) -> int:
    """Where the date itself starts when dateparser kept "after" / "before" in its phrase ("after 2019"):
    the direction is read from the words before the date (:func:`_direction`). "vor 3 Tagen" keeps its
    "vor" (it says "ago" there, not "before")."""
    words = list(_WORD.finditer(text, start, end))
    first = words[0][0].lower() if words else ""
    directed = first in _BEFORE | _AFTER | _SINCE
    if len(words) > 1 and directed and re.search(_YEAR, text[words[1].start() : end]):
        return words[1].start()
    return start


_MONTHS = _words(
    "january february march april may june july august september october november december jan feb mar apr "
    "jun jul aug sep sept oct nov dec januar janner februar marz maerz mai juni juli oktober dezember jan "
    "okt dez janvier fevrier mars avril juin juillet aout septembre octobre novembre decembre janv fevr avr "
    "juil enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre diciembre "
    "ene abr dic"
)
_UNITS = _words(
    "day days tag tage tagen jour jours dia dias week weeks woche wochen semaine semaines semana semanas "
    "month months monat monate monaten mois mes meses year years jahr jahre jahren an ans annee annees "
    "ano anos"
)
_TIME = re.compile(r"\d{1,2}[:h]\d{2}|\b\d{1,2}\s*(?:am|pm|uhr|h)\b", re.IGNORECASE)


def _plausible(text: str, start: int, end: int) -> bool:
    """Whether a dateparser phrase is clearly a date: a bare year by the year rule, a day word, a month
    name with a year, or a number of days / weeks / months / years ago; never a time of day."""
    core = text[start:end].strip()
    if re.fullmatch(_YEAR, core):
        return _bare_year_is_date(text, start, end)
    if not re.search(r"\d", core):
        return core.lower() in _DAY_WORDS
    if _TIME.search(core):
        return False
    words = {_fold(w).strip(".") for w in _WORD.findall(core)}
    if _AGO.search(core) and words & _UNITS:
        return True
    return bool(words & _MONTHS and re.search(rf"(?<!\d){_YEAR}(?!\d)", core))


def _bare_year_is_date(text: str, start: int, end: int) -> bool:
    before = [w.lower() for w in _WORD.findall(text[:start])]
    after = [w.lower() for w in _WORD.findall(text[end:])]
    if (before and before[-1] in _TITLE_WORDS) or (after and after[0] in _TITLE_WORDS):
        return False
    tied = bool(before) and before[-1] in (_CONNECTORS | _BEFORE | _AFTER | _SINCE | _RANGE_OPEN | _JOINERS)
    return not after or tied


def _period_of(phrase: str, today: date) -> tuple[date, date] | None:
    from dateparser.date import DateDataParser

    parser = DateDataParser(
        languages=list(LANGUAGES),
        settings={"RELATIVE_BASE": datetime(today.year, today.month, today.day), "PREFER_DATES_FROM": "past"},
    )
    data = parser.get_date_data(phrase)
    if data.date_obj is None:
        return None
    day = data.date_obj.date()
    if data.period == "year":
        return date(day.year, 1, 1), date(day.year, 12, 31)
    if data.period == "month":
        return date(day.year, day.month, 1), _month_end(day.year, day.month)
    if data.period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    return day, day


# ------------------------------------------------------------------ ties, places, the rest
def _words_before(text: str, start: int) -> list[re.Match[str]]:
    return list(_WORD.finditer(text, 0, start))


def _absorb_connectors(text: str, start: int, limit: int = 2) -> int:
    """Move ``start`` left over up to ``limit`` tie words right before it ("dog in | summer 2019")."""
    for _ in range(limit):
        words = _words_before(text, start)
        if not words or words[-1][0].lower() not in _CONNECTORS or text[words[-1].end() : start].strip():
            break
        start = words[-1].start()
    return start


def _direction(text: str, start: int) -> tuple[str | None, int]:
    """Whether "before", "after" or "since" (any language) opens the date phrase, and its new start."""
    words = _words_before(text, start)
    if len(words) >= 2 and words[-1][0].lower() == "de" and words[-2][0].lower() in _BEFORE | _AFTER:
        words = words[:-1]  # antes de 2019, después de 2019
    if not words or text[words[-1].end() : start].strip(" de"):
        return None, start
    word = words[-1][0].lower()
    for name, group in (("before", _BEFORE), ("after", _AFTER), ("since", _SINCE)):
        if word in group:
            return name, words[-1].start()
    return None, start


def _fold(text: str) -> str:
    """Case- and accent-folded, one character per character (offsets stay valid)."""
    out = []
    for char in text:
        base = unicodedata.normalize("NFKD", char)[0].lower()
        out.append(base if len(base) == 1 else char)
    return "".join(out)


def _place(text: str, places: Sequence[str], removed: list[tuple[int, int]]) -> tuple[str, int, int] | None:
    """The first collection place the text names as a place, written with a capital letter: (facet name,
    span start, span end); the earliest in the text wins, then the longest name."""
    plain = _mask(text, removed)
    folded = _fold(plain)
    rest_words = [w.lower() for w in _WORD.findall(plain)]
    found: list[tuple[int, int, str, int]] = []
    for name in sorted({p for p in places if p and p.strip()}, key=len, reverse=True):
        key = _fold(" ".join(name.split()))
        for match in re.finditer(rf"(?<![\w'’]){re.escape(key)}(?![\w'’])", folded):
            start, end = match.start(), match.end()
            if not plain[start].isupper():
                continue
            before = _words_before(plain, start)
            after = [w.lower() for w in _WORD.findall(plain[end:])]
            whole = all(w in _FILLER | _CONNECTORS for w in rest_words if w not in key.split() and w)
            if whole and not [w for w in after if w not in _FILLER]:
                found.append((start, -len(key), name, _absorb_connectors(plain, start, 1)))
                continue
            tied = bool(before) and before[-1][0].lower() in _PLACE_PREPOSITIONS
            if tied and (not after or after[0] in _CONNECTORS | _PLACE_PREPOSITIONS | _JOINERS):
                found.append((start, -len(key), name, before[-1].start()))
    if not found:
        return None
    start, length, name, span_start = min(found)
    return name, span_start, start - length


def _rest(text: str, removed: list[tuple[int, int]]) -> str:
    """The text without the removed spans; "" when only filler words ("photos from") are left."""
    parts, cursor = [], 0
    for s, e in removed:
        parts.append(text[cursor:s])
        cursor = max(cursor, e)
    parts.append(text[cursor:])
    rest = " ".join(" ".join(parts).split()).strip(" ,;:-.!?")
    words = [w.lower() for w in _WORD.findall(rest)]
    if all(w in _FILLER or w in _CONNECTORS for w in words):
        return ""
    return rest


# ------------------------------------------------------------------ a parsed query and its filters
@dataclass(frozen=True)
class Interpretation:
    """A query with its when and where turned into filters. ``query`` is None when nothing but a date
    and/or a place was asked ("2019", "Paris"): the filtered photos are then listed by date."""

    query: Query | None
    filters: Filters
    understood: Understood | None  # None: nothing understood (the query is searched as given)


def interpret(
    query: Query, filters: Filters, places: Sequence[str], today: date | None = None
) -> Interpretation:
    """Understand the positive text terms of ``query`` (a plain query is one such term): the first date
    and the first place found become filters. A filter the caller already set (dates, place) is not
    read from the text, so what the text says about it stays text and is never silently dropped."""
    want_dates = filters.date_from is None and filters.date_to is None
    want_place = filters.place is None and query.place is None
    terms: list[Term] = []
    found: Understood | None = None
    for term in query.terms:
        if found is not None or term.kind is not TermKind.TEXT or term.weight <= 0:
            terms.append(term)
            continue
        got = understand(str(term.value), places if want_place else (), today, dates=want_dates)
        if not got.found:
            terms.append(term)
            continue
        found = got
        if got.text:
            terms.append(Term.text(got.text, term.weight))
    if found is None:
        return Interpretation(query, filters, None)
    narrowed = replace(
        filters,
        date_from=found.date_from if want_dates else filters.date_from,
        date_to=found.date_to if want_dates else filters.date_to,
        place=found.place or filters.place,
    )
    rest = Query(tuple(terms), place=query.place, text=query.text) if terms or query.text else None
    if rest is None and query.place:
        narrowed = replace(narrowed, place=query.place)
    return Interpretation(rest, narrowed, found)
