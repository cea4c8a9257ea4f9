# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning logic for the postgresql_migrate module.

Nothing here talks to PostgreSQL: these functions read the V-files of a directory (names,
versions, checksums, the no-transaction marker), split a file into statements as psql
does, and compare the files with the rows of the history table to decide what a run has
to do. That keeps those rules unit-testable without a server; the module keeps the
Ansible plumbing and the database work.

Private to this collection: the leading underscore means no compatibility promise.
"""

from __future__ import annotations

import hashlib
import os
import re

FILE_RE = re.compile(r"^V(?P<version>[0-9]+(?:[._][0-9]+)*)__(?P<description>[^/\\]+)\.sql$")
VERSION_RE = re.compile(r"^[Vv]?(?P<version>[0-9]+(?:[._][0-9]+)*)$")
NO_TRANSACTION_RE = re.compile(r"^--\s*cachestack:no-transaction\s*$")
# A statement that starts or ends a transaction (ROLLBACK TO a savepoint does not).
TRANSACTION_CONTROL_RE = re.compile(
    r"(BEGIN|START\s+TRANSACTION|COMMIT|END|ABORT"
    r"|ROLLBACK(?!\s+(?:(?:WORK|TRANSACTION)\s+)?TO\b))\b",
    re.IGNORECASE,
)
BEGIN_ATOMIC_RE = re.compile(r"\bBEGIN\s+ATOMIC\b", re.IGNORECASE)
LOCK_NAMESPACE = "cachestack.aws.postgresql_migrate:"
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
# What continues a string literal after its closing quote: whitespace holding a newline
# (and maybe -- comments), then another quote. PostgreSQL and psql read 'a'<newline>'b' as
# one literal 'ab' of the first one's kind, so an E'' string stays an E'' string.
_QUOTE_CONTINUE = re.compile(r"(?:[ \t\f\v]|--[^\n\r]*)*[\n\r](?:[ \t\n\r\f\v]|--[^\n\r]*[\n\r])*'")


class MigrationError(Exception):
    """Bad input: a malformed file name, a duplicate version, an edited applied file..."""


class Migration:
    """One V-file of the directory."""

    def __init__(
        self, version: tuple, description: str, script: str, sql: str, checksum: str
    ) -> None:
        self.key = version
        self.version = version_str(version)
        self.description = description
        self.script = script
        self.sql = sql
        self.checksum = checksum
        self.transaction = not is_no_transaction(sql)

    def summary(self) -> dict:
        return dict(
            version=self.version,
            description=self.description,
            script=self.script,
            transaction=self.transaction,
        )


def parse_version(text: object) -> tuple:
    """Turn a version (``3``, ``"2.1"``, ``"1_10"``, ``"V4"``) into a comparable key.

    Parts compare as integers; trailing zero parts are dropped so 1, 1.0 and 01 are equal.
    """
    if isinstance(text, bool) or text is None:
        raise MigrationError(f"invalid version {text!r}: expected digits separated by dots")
    if isinstance(text, float):
        text = repr(text)
    match = VERSION_RE.match(str(text).strip())
    if not match:
        raise MigrationError(f"invalid version {text!r}: expected digits separated by dots")
    parts = [int(p) for p in re.split(r"[._]", match.group("version"))]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_str(key: tuple) -> str:
    return ".".join(str(p) for p in key)


def parse_filename(name: str) -> tuple | None:
    """Return (version key, description) for a V-file name, None for a file to ignore.

    A name that starts with ``V`` and ends in ``.sql`` (any case) but does not match
    ``V<version>__<description>.sql`` raises MigrationError naming it.
    """
    if not (name.startswith("V") and name.lower().endswith(".sql")):
        return None
    match = FILE_RE.match(name)
    if not match or not match.group("description").strip("_ "):
        raise MigrationError(
            f"malformed migration file name {name!r}: expected V<version>__<description>.sql, "
            "for example V1__create_items.sql or V2.1__add_index.sql"
        )
    description = match.group("description").replace("_", " ").strip()
    return parse_version(match.group("version")), description


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_no_transaction(sql: str) -> bool:
    """True when the first non-blank line is the no-transaction marker comment."""
    for line in sql.lstrip("\ufeff").splitlines():
        if line.strip():
            return bool(NO_TRANSACTION_RE.match(line.strip()))
    return False


def load_migrations(path: str) -> list:
    """Read the V-files of a directory, sorted by version."""
    if not os.path.isdir(path):
        raise MigrationError(f"migration directory {path} does not exist or is not a directory")
    found = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if not os.path.isfile(full):
            continue
        parsed = parse_filename(name)
        if parsed is None:
            continue
        key, description = parsed
        if key in found:
            raise MigrationError(
                f"files {found[key].script} and {name} both carry version {version_str(key)}"
            )
        with open(full, "rb") as fh:
            data = fh.read()
        try:
            sql = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MigrationError(f"{name} is not valid UTF-8: {e}") from e
        if sql.startswith("\ufeff"):  # a byte-order mark: PostgreSQL would read it as SQL
            sql = sql[1:]
        migration = Migration(key, description, name, sql, sha256_hex(data))
        if migration.transaction:
            refuse_transaction_control(migration)
        found[key] = migration
    return [found[k] for k in sorted(found)]


def refuse_transaction_control(m: Migration) -> None:
    """Raise MigrationError for a BEGIN, COMMIT... in a file the module wraps in a transaction.

    Run inside the module's transaction, a COMMIT of the file's own would make what comes
    before it permanent and the rest run outside any transaction: a failure after it would
    leave the file half applied and unrecorded. SQL-standard function bodies
    (BEGIN ATOMIC ... END) hold semicolons the splitter cannot see, so a file with one is
    left to the server.
    """
    if BEGIN_ATOMIC_RE.search(m.sql):
        return
    for offset, statement in split_statements(m.sql):
        match = TRANSACTION_CONTROL_RE.match(statement)
        if match:
            raise MigrationError(
                f"{m.script} line {line_of(m.sql, offset)}: {match.group(1).upper()} of its own"
                " in a file the module runs in one transaction (it could not roll back what"
                " the file commits). Remove it, or make the file run outside a transaction:"
                " first line -- cachestack:no-transaction"
            )


def split_statements(sql: str) -> list:
    """Split SQL at top-level semicolons into (offset, statement) pairs.

    Quotes ('', E'', ""), dollar quotes, line and nested block comments are honoured (a
    string continued on a later line, 'a'<newline>'b', is one string, so an E'' string's
    backslash escapes hold in its continuation too), and,
    as in psql, a semicolon inside parentheses does not end a statement (the actions of
    CREATE RULE ... DO (INSERT ...; INSERT ...)).
    Statements holding nothing but whitespace and comments are left out. Each statement
    starts at its first token (comments before it are dropped) and the offset is where that
    token is in sql, so an error position inside the statement maps back to the file.
    """
    out = []
    i, n = 0, len(sql)
    start = None
    parens = 0  # depth of open parentheses

    def flush(end: int) -> None:
        if start is not None:
            out.append((start, sql[start:end]))

    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if c == ";" and not parens:
            flush(i + 1)
            i += 1
            start = None
            continue
        if c.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if c == "(":
            parens += 1
        elif c == ")" and parens:
            parens -= 1
        if c == "'":
            prev = sql[i - 1] if i > 0 else ""
            before = sql[i - 2] if i > 1 else ""
            backslash = prev in ("e", "E") and not (before and _IDENT_CHAR.match(before))
            i += 1
            while i < n:
                if backslash and sql[i] == "\\":
                    i += 2
                    continue
                if sql[i] == "'":
                    if i + 1 < n and sql[i + 1] == "'":
                        i += 2
                        continue
                    more = _QUOTE_CONTINUE.match(sql, i + 1)
                    if more:
                        i = more.end()
                        continue
                    break
                i += 1
            i += 1
            continue
        if c == '"':
            i += 1
            while i < n:
                if sql[i] == '"':
                    if i + 1 < n and sql[i + 1] == '"':
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            continue
        if c == "$":
            prev = sql[i - 1] if i > 0 else ""
            match = None if (prev and _IDENT_CHAR.match(prev)) else _DOLLAR_TAG.match(sql, i)
            if match:
                tag = match.group(0)
                j = sql.find(tag, match.end())
                i = n if j < 0 else j + len(tag)
                continue
        i += 1
    flush(n)
    return out


def line_of(text: str, position: int) -> int:
    """1-based line number of a 0-based character position."""
    return text.count("\n", 0, max(position, 0)) + 1


def lock_key(schema: str, table: str) -> int:
    """Signed 64-bit advisory lock key for a history table."""
    digest = hashlib.sha256((f"{LOCK_NAMESPACE}{schema}.{table}").encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Plan:
    """What a run has to do, computed from the files and the history rows."""

    def __init__(self) -> None:
        self.pending = []
        self.baseline = None
        self.warnings = []
        self.recorded = []


def build_plan(
    migrations: list,
    history: list,
    target_version: object = None,
    baseline_version: object = None,
    on_checksum_mismatch: str = "fail",
    out_of_order: bool = False,
) -> Plan:
    """Compare the files with the history rows.

    history rows are dicts with version, type ('SQL' or 'BASELINE'), checksum and script.
    Raise MigrationError for an edited applied file (unless on_checksum_mismatch='warn')
    and for a late file older than the highest recorded version (unless out_of_order).
    """
    plan = Plan()
    rows = {}
    for row in history:
        rows[parse_version(row["version"])] = row
    plan.recorded = sorted(rows)
    target = None if target_version in (None, "") else parse_version(target_version)

    baselines = [k for k, r in rows.items() if r.get("type") == "BASELINE"]
    baseline = max(baselines) if baselines else None
    if not rows and baseline_version not in (None, ""):
        baseline = parse_version(baseline_version)
        plan.baseline = baseline

    on_disk = set()
    mismatched = []
    for m in migrations:
        on_disk.add(m.key)
        row = rows.get(m.key)
        if row is not None:
            if row.get("type", "SQL") == "SQL" and row.get("checksum") != m.checksum:
                mismatched.append((m, row))
            continue
        if baseline is not None and m.key <= baseline:
            continue
        if target is not None and m.key > target:
            continue
        plan.pending.append(m)

    for m, row in mismatched:
        text = (
            "checksum mismatch for version {} ({}): recorded sha256 {}, the file now has {}; "
            "an applied file must not change, add a new version instead".format(
                m.version, m.script, row.get("checksum"), m.checksum
            )
        )
        if on_checksum_mismatch != "warn":
            raise MigrationError(text + " (or set on_checksum_mismatch: warn)")
        plan.warnings.append(text)

    for key in sorted(rows):
        row = rows[key]
        if row.get("type", "SQL") == "SQL" and key not in on_disk:
            plan.warnings.append(
                "version {} ({}) is recorded in the history table but its file is missing "
                "from the directory".format(version_str(key), row.get("script"))
            )

    if rows and not out_of_order:
        highest = max(rows)
        late = [m for m in plan.pending if m.key < highest]
        if late:
            raise MigrationError(
                "{} older than the current version {} and never applied: {}; renumber "
                "above {} or set out_of_order: true".format(
                    "file is" if len(late) == 1 else "files are",
                    version_str(highest),
                    ", ".join(m.script for m in late),
                    version_str(highest),
                )
            )
    return plan
