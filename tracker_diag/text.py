"""Text that leaves tracker-diag for a terminal, a log or a file: no secrets, no control codes.

- :func:`redact` masks the userinfo of every URI (``https://user:pass@host`` ->
  ``https://***@host``) and token-like query values, wherever a URI or an exception text
  is printed or written;
- :func:`printable` makes user data (run names, keys, tags, error texts quoting them) inert
  for a terminal: C0/C1 control characters (ESC, CSI, OSC, BEL, backspace, carriage return…)
  and Unicode bidi overrides become visible ``\\x1b``-style escapes.
"""

from __future__ import annotations

import re

# scheme://userinfo@host : userinfo is everything up to the last '@' before the host part
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s?#]*)@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:access_token|token|api_key|apikey|password|secret|sig)=)[^&#\s]+")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_NL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def redact(text: str) -> str:
    """``text`` with the userinfo of each URI and secret query values masked."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}***@" if m.group(2) else m.group(0), text)
    return _SECRET_QUERY.sub(r"\1***", text)


def strip_userinfo(uri: str) -> str:
    """``uri`` without its userinfo at all (for links: a browser asks for credentials itself)."""
    return _USERINFO.sub(lambda m: m.group(1), uri)


def _escape(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: object, newlines: bool = False) -> str:
    """``text`` safe to print: every control character escaped (``newlines`` keeps ``\\n``
    and ``\\t``, for multi-line messages), secrets redacted."""
    return (_CONTROL if newlines else _CONTROL_NL).sub(_escape, redact(str(text)))
