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


def render_page(version_html: str, host_html: str, elapsed: float, outcome: str) -> bytes:
    """The page; ``version_html`` and ``host_html`` are already escaped."""
    return PAGE.format(
        version=version_html, host=host_html, elapsed=elapsed, outcome=outcome
    ).encode()


def html(text: str) -> str:
    return escape(text, quote=True)
