"""Check a cachestack app.ini with the app's own parser.

``python check_config.py FILE``: the app role runs it as the template's validator, so a
configuration the app would refuse never replaces the live one (a graceful reload would
otherwise stop the app). Prints one line naming the file, section and key on error; never
prints values.

``python check_config.py --postgresql FILE``: prints, as one JSON object, the [postgresql]
connection settings the app would use (host, port, dbname, user, password, sslmode,
sslrootcert, connect_timeout, statement_timeout), with password_file read. The role's plan
reads the database with them (tasks/migrate.yml, no_log: the password is in the output),
so nothing parses app.ini but the app's parser.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

# Installed beside the cachestack_app package; -I keeps this folder off sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cachestack_app.config import ConfigError, load_config

USAGE = "usage: check_config.py [--postgresql] FILE"


def main(argv: list[str]) -> int:
    args = argv[1:]
    show_postgresql = args[:1] == ["--postgresql"]
    if show_postgresql:
        args = args[1:]
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        config = load_config(args[0])
    except ConfigError as exc:
        print(f"invalid app configuration: {exc}", file=sys.stderr)
        return 1
    if show_postgresql:
        print(json.dumps(dataclasses.asdict(config.postgresql), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
