"""Check a cachestack app.ini with the app's own parser: ``python check_config.py FILE``.

The app role runs it as the template's validator, so a configuration the app would
refuse never replaces the live one (a graceful reload would otherwise stop the app).
Prints one line naming the file, section and key on error; never prints values.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Installed beside the cachestack_app package; -I keeps this folder off sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cachestack_app.config import ConfigError, load_config


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_config.py FILE", file=sys.stderr)
        return 2
    try:
        load_config(argv[1])
    except ConfigError as exc:
        print(f"invalid app configuration: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
