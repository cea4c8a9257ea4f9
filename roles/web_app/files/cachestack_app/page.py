"""The HTML the app serves: the original's page (database version, host, elapsed time)
plus the cache outcome, and the short error page."""

from __future__ import annotations

from html import escape

PAGE = (
    "<!doctype html>\n"
    '<html lang="en">\n<head><meta charset="utf-8"><title>cachestack</title></head>\n'
    "<body>\n<h1>cachestack</h1>\n"
    "<p>Database version: <strong>{version}</strong></p>\n"
    "<p>Database host: <strong>{host}</strong></p>\n"
    "<p>Elapsed time: <strong>{elapsed:.4f} s</strong></p>\n"
    "<p>Cache: <strong>{outcome}</strong></p>\n"
    "</body>\n</html>\n"
)

UNAVAILABLE_PAGE = (
    b"<!doctype html>\n"
    b'<html lang="en">\n<head><meta charset="utf-8"><title>cachestack: unavailable</title>'
    b"</head>\n<body>\n<h1>Service unavailable</h1>\n"
    b"<p>The page is not cached and the database did not answer in time. "
    b"Please try again in a few seconds.</p>\n</body>\n</html>\n"
)

ERROR_PAGE = (
    b"<!doctype html>\n"
    b'<html lang="en">\n<head><meta charset="utf-8"><title>cachestack: error</title>'
    b"</head>\n<body>\n<h1>Internal error</h1>\n"
    b"<p>Something went wrong; it has been logged.</p>\n</body>\n</html>\n"
)


# The page around its one per-request figure, the elapsed time: what comes before and
# after it is fixed for a given value, so the near cache's fast path builds those bytes
# once per value (page_parts) and each request only formats the elapsed time.
ELAPSED = "{elapsed:.4f}"
_HEAD, _TAIL = PAGE.split(ELAPSED)


def page_parts(version_html: str, host_html: str, outcome: str) -> tuple[bytes, bytes]:
    """The page's bytes before and after the elapsed time; ``version_html`` and
    ``host_html`` are already escaped."""
    fields = {"version": version_html, "host": host_html, "outcome": outcome}
    return _HEAD.format(**fields).encode(), _TAIL.format(**fields).encode()


def elapsed_bytes(elapsed: float) -> bytes:
    """The elapsed time as the page shows it (ELAPSED's format)."""
    return b"%.4f" % elapsed


def render_page(version_html: str, host_html: str, elapsed: float, outcome: str) -> bytes:
    """The page; ``version_html`` and ``host_html`` are already escaped."""
    head, tail = page_parts(version_html, host_html, outcome)
    return head + elapsed_bytes(elapsed) + tail


def html(text: str) -> str:
    return escape(text, quote=True)
