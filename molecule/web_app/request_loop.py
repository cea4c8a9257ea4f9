"""Request a URL in a loop until a stop file appears; print the counts as JSON.

Usage: python3 request_loop.py URL STOP_FILE [MAX_SECONDS]
A request fails on a connection error, a timeout or any status other than 200.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request


def main(url: str, stop_file: str, max_seconds: float) -> int:
    if not url.startswith("http://"):
        raise SystemExit(f"not an http:// URL: {url}")
    total = failed = 0
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        total += 1
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http only)
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"status {response.status}")
        except (OSError, RuntimeError, urllib.error.URLError) as exc:
            failed += 1
            if len(errors) < 5:
                errors.append(str(exc))
        time.sleep(0.02)
    print(json.dumps({"total": total, "failed": failed, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 120))
