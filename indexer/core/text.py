"""File names as text: shown safely on one line, and stored losslessly in the database.

Linux file names are bytes. Python decodes the bytes that are not UTF-8 as lone surrogates
(``surrogateescape``), which no UTF-8 database and no terminal accepts. :func:`to_stored` maps each
such surrogate to a private-use character (reversed by :func:`from_stored`), so every file keeps its
exact name; :func:`printable` escapes them, and control characters, for people.

The stored form is injective and built character by character (a prefix of a name stores as a
prefix of its stored form, which the folder filter relies on):

    surrogate U+DC80+k (the byte 0x80+k)          -> U+10FD80+k                  (one character)
    a real U+10FD80..U+10FDFF, or U+10FD7F itself  -> U+10FD7F then that character (two characters)
    any other character                            -> itself

U+10FD7F is the escape: it never stands alone in a stored name, and a lone U+10FD80..U+10FDFF
always means a byte, so no valid name can be stored like another one. Names stored before the
escape existed decode as they did (they held no U+10FD7F, except a real one, which is read back
as itself unless a U+10FD7F..U+10FDFF follows it): no migration is needed. A name that really
contains U+10FD80..U+10FDFF was read back wrongly before; its next index run finds it by content
as a move and stores it in the new form.
"""

from __future__ import annotations

_SURROGATE_LO, _SURROGATE_HI = 0xDC80, 0xDCFF  # what surrogateescape makes of the bytes 0x80..0xFF
_STORED_LO, _STORED_HI = 0x10FD80, 0x10FDFF  # stored as U+10FD80..U+10FDFF (plane 16 private use)
_ESCAPE = chr(_STORED_LO - 1)  # U+10FD7F: "the next character is itself"
_STORED_BASE = _STORED_LO - _SURROGATE_LO
_TO_STORED: dict[int, str] = {cp: chr(cp + _STORED_BASE) for cp in range(_SURROGATE_LO, _SURROGATE_HI + 1)}
_TO_STORED.update({cp: _ESCAPE + chr(cp) for cp in range(_STORED_LO - 1, _STORED_HI + 1)})
_FROM_STORED = {cp + _STORED_BASE: cp for cp in range(_SURROGATE_LO, _SURROGATE_HI + 1)}
_SPECIAL = frozenset(chr(cp) for cp in range(_STORED_LO - 1, _STORED_HI + 1))


def _needs_mapping(text: str) -> bool:
    return any(_SURROGATE_LO <= ord(ch) <= _SURROGATE_HI or ch in _SPECIAL for ch in text)


def to_stored(name: str) -> str:
    """A file name as valid UTF-8 text for the database: unchanged unless it holds undecodable
    bytes or U+10FD7F..U+10FDFF, and no two names give the same text."""
    if name.isascii() or not _needs_mapping(name):
        return name
    return name.translate(_TO_STORED)


def from_stored(text: str) -> str:
    """The file name :func:`to_stored` was given."""
    if text.isascii() or not any(ch in _SPECIAL for ch in text):
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == _ESCAPE and i + 1 < n and text[i + 1] in _SPECIAL:
            out.append(text[i + 1])  # an escaped character: itself
            i += 2
            continue
        out.append(ch.translate(_FROM_STORED))  # a lone escape (never written) is kept as itself
        i += 1
    return "".join(out)


def printable(text: str) -> str:
    """One line of safe text: control characters escaped (``\\n``, ``\\x1b``), undecodable bytes of a
    file name shown as ``\\xe9``; everything printable, non-ASCII letters included, kept as is."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        cp = ord(ch)
        if _SURROGATE_LO <= cp <= _SURROGATE_HI:
            out.append(f"\\x{cp - 0xDC00:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def displayable(name: str) -> str:
    """A file name as valid UTF-8 text to send (JSON, HTTP headers): undecodable bytes shown as
    ``\\xe9``, everything else, control characters included, unchanged (identity on UTF-8 names)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
