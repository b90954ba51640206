"""File names as text: shown safely on one line, and stored losslessly in the database.

Linux file names are bytes. Python decodes the bytes that are not UTF-8 as lone surrogates
(``surrogateescape``), which no UTF-8 database and no terminal accepts. :func:`to_stored` maps each
such surrogate to a private-use character (reversed by :func:`from_stored`), so every file keeps its
exact name; :func:`printable` escapes them, and control characters, for people.
"""

from __future__ import annotations

_SURROGATE_LO, _SURROGATE_HI = 0xDC80, 0xDCFF  # what surrogateescape makes of the bytes 0x80..0xFF
_STORED_BASE = 0x10FD80 - _SURROGATE_LO  # stored as U+10FD80..U+10FDFF (plane 16 private use)
_TO_STORED = {cp: cp + _STORED_BASE for cp in range(_SURROGATE_LO, _SURROGATE_HI + 1)}
_FROM_STORED = {v: k for k, v in _TO_STORED.items()}


def to_stored(name: str) -> str:
    """A file name as valid UTF-8 text for the database (unchanged when it already is)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.translate(_TO_STORED)
    return name


def from_stored(text: str) -> str:
    """The file name :func:`to_stored` was given."""
    if any(0x10FD80 <= ord(ch) <= 0x10FDFF for ch in text):
        return text.translate(_FROM_STORED)
    return text


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
