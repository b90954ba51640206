"""Hiding database passwords in anything shown to people (error messages, logs, the API).

A password can reach a message in three spellings: the userinfo of a URL (``scheme://user:pw@host``),
a query parameter (``...?password=pw&host=...``) and a libpq keyword string (``host=h password=pw``,
quoted or not). :func:`redact` replaces every one of them with ``***``; it never fails and leaves
the rest of the text as it was.
"""

from __future__ import annotations

import re

HIDDEN = "***"

# scheme://user:password@  (greedy up to the last "@" before the host: an unencoded "@" in a password)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:)[^/\s]*(?=@)")
# password=value / password = 'quoted value' (libpq keywords, URL query parameters, any case)
_KEYWORD = re.compile(
    r"(?P<head>(?<![\w-])(?:ssl)?(?:password|passwd|pwd)\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;,'\"]*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every database password in it replaced by ``***``."""
    text = _USERINFO.sub(lambda m: m["head"] + HIDDEN, text)
    return _KEYWORD.sub(lambda m: m["head"] + HIDDEN, text)
