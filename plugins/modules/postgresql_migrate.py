#!/usr/bin/python
# Copyright: (c) 2026, cachestack maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgresql_migrate
short_description: Apply versioned SQL migration files to a PostgreSQL database, once each
version_added: 0.1.0
description:
  - Applies the SQL files of a directory on the managed host to a PostgreSQL database in
    version order, and records each one in a history table so that it never runs twice.
  - Files are named C(V<version>__<description>.sql), for example C(V1__create_items.sql)
    or C(V2.1__add_index.sql). The version is one or more integers separated by C(.) or a
    single C(_) and compares numerically, so C(V2) runs before C(V10); leading zeros and
    trailing zero parts do not count (C(V01), C(V1) and C(V1.0) are the same version, which
    is an error when two files carry it). In the description, C(_) stands for a space.
  - Every other file in the directory is ignored, except that a name starting with C(V)
    and ending in C(.sql) (in any case) that does not match the pattern is an error naming
    the file.
  - Each pending file runs in its own transaction, together with the insertion of its
    history row, so a file either applies completely and is recorded, or leaves nothing
    behind and is not recorded. The first failing file stops the run; the files before it
    stay applied. The error names the file and the line, and quotes PostgreSQL's message.
  - A file whose first non-blank line is the marker comment C(-- cachestack:no-transaction)
    runs outside a transaction, one statement at a time, for statements that PostgreSQL
    refuses inside one (C(CREATE INDEX CONCURRENTLY), C(ALTER TYPE ... ADD VALUE) before
    PostgreSQL 12, C(VACUUM)). Such a file is recorded once all its statements succeed; if
    one fails, the statements before it stay applied and run again on the next run, so
    write each statement so that it can be repeated.
  - The whole run holds a session-level advisory lock derived from the history table's
    name, so concurrent runs against one database apply each version exactly once; a run
    that had to wait re-reads the history after getting the lock, finds nothing pending,
    and reports no change.
  - The session is reset after each file, before its history row is written
    (C(RESET SESSION AUTHORIZATION), C(RESET ROLE), C(RESET ALL)), so a C(SET ROLE),
    C(SET SESSION AUTHORIZATION) or other C(SET) in one file does not leak into the next
    file or into the history bookkeeping; every file starts, and every history row is
    written, with the identity (O(login_user)) and settings the connection started with.
  - In check mode the module connects, reads the history table in a read-only session, and
    reports what would run; it executes no statement of any file, not even in a rolled-back
    transaction, and creates nothing.
options:
  path:
    description:
      - Directory on the managed host that holds the C(V<version>__<description>.sql) files.
    type: path
    required: true
  history_table:
    description:
      - Name of the table that records the applied versions.
      - It is created, together with its schema when missing, on the first run that has
        something to record. It holds one row per applied file (version, description,
        type, file name, sha256 checksum, applied_at, execution_ms, applied_by) and one
        C(BASELINE) row when O(baseline_version) adopted the database.
    type: str
    default: cachestack_schema_history
  history_schema:
    description:
      - Schema of O(history_table).
    type: str
    default: public
  target_version:
    description:
      - Apply files up to and including this version, and stop there.
      - Later files are neither run nor reported as pending.
      - Quote it in YAML unless it is plain digits. YAML reads V(1.10) as the number 1.1,
        V(1_10) as 110 and V(010) as 8, before the module sees it; write V("1.10"),
        V("1_10") or V("010").
    type: raw
  baseline_version:
    description:
      - Adopt an existing database whose schema already matches the files up to this
        version. When the history table is absent or empty, record a C(BASELINE) row for
        this version instead of running those files; the later files run as usual.
      - Has no effect once the history table holds a row.
      - Quote it in YAML unless it is plain digits, as for O(target_version).
    type: raw
  on_checksum_mismatch:
    description:
      - What to do when an applied file's content changed since it ran (its sha256 differs
        from the recorded one).
      - V(fail) stops before running anything, naming the version.
      - V(warn) emits a warning naming the version and goes on; the recorded checksum is
        kept.
    type: str
    choices: [fail, warn]
    default: fail
  out_of_order:
    description:
      - Whether to apply a pending file whose version is lower than the highest recorded
        one (a file added late with an old version number).
      - When V(false), such a file is an error naming it, and nothing runs.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for the advisory lock held by another run against the same
        database and history table.
      - V(0) waits indefinitely.
      - Check mode takes no lock.
    type: int
    default: 300
extends_documentation_fragment:
  - cachestack.aws.postgresql
attributes:
  check_mode:
    support: full
    description: Reads the history table and reports the pending versions; runs no SQL of the files.
  diff_mode:
    support: full
    description: Shows the list of recorded versions before and after the run.
notes:
  - Do not edit a file once it has been applied; add a new version instead. A changed file
    fails the run unless O(on_checksum_mismatch=warn).
  - A recorded version whose file is no longer in the directory only produces a warning.
  - A transactional file must not contain C(BEGIN), C(COMMIT), C(ROLLBACK) or C(END) of its
    own. The module refuses such a file before running any file, since it could not roll
    back what the file committed half-way. Mark the file no-transaction instead.
  - A file may start with a UTF-8 byte-order mark; it is not sent to the server.
  - Statements of a no-transaction file are split at semicolons outside quotes, dollar
    quotes, comments and parentheses, as psql splits them; SQL-standard function bodies
    (C(BEGIN ATOMIC ... END)) are not supported in such files. A failed
    C(CREATE INDEX CONCURRENTLY) leaves an invalid index behind
    (PostgreSQL's own behaviour), so precede it, in the same file, with
    C(DROP INDEX CONCURRENTLY IF EXISTS) for that index (see the examples); C(IF NOT EXISTS)
    alone would keep the invalid index.
seealso:
  - module: community.postgresql.postgresql_script
  - module: community.postgresql.postgresql_query
  - name: Flyway versioned migrations
    description: The naming scheme and history-table approach this module follows.
    link: https://documentation.red-gate.com/fd/migrations-184127470.html
author:
  - cachestack maintainers (@cachestack)
"""

EXAMPLES = r"""
- name: Bring the application database schema up to date
  cachestack.aws.postgresql_migrate:
    path: /opt/app/migrations
    login_host: "{{ db_host }}"
    login_user: app
    login_password: "{{ db_password }}"
    login_db: app
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/rds-ca.pem

- name: Show what would run (nothing is executed)
  cachestack.aws.postgresql_migrate:
    path: /opt/app/migrations
    login_db: app
  check_mode: true
  diff: true
  register: plan

- name: Adopt a database created by hand with the files up to V3, then apply V4 onwards
  cachestack.aws.postgresql_migrate:
    path: /opt/app/migrations
    login_db: legacy
    baseline_version: 3

- name: Apply up to version 2.1 only, keeping the history in a schema of its own
  cachestack.aws.postgresql_migrate:
    path: /opt/app/migrations
    login_db: app
    history_schema: meta
    history_table: schema_versions
    target_version: "2.1"

# A no-transaction file, e.g. V5__index_items_name.sql, starts with the marker. Each
# statement can be repeated: when the creation fails, the next run drops the invalid
# index it left and tries again.
#   -- cachestack:no-transaction
#   DROP INDEX CONCURRENTLY IF EXISTS items_name_idx;
#   CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
"""

RETURN = r"""
applied:
  description: The files this run applied, in the order they ran; empty in check mode.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Normalised version.
      type: str
      sample: "2"
    description:
      description: Description from the file name.
      type: str
      sample: add items index
    script:
      description: File name.
      type: str
      sample: V2__add_items_index.sql
    transaction:
      description: Whether the file ran inside a transaction.
      type: bool
      sample: true
    execution_ms:
      description: Wall-clock milliseconds the file's SQL took.
      type: int
      sample: 12
  sample:
    - version: "1"
      description: create items
      script: V1__create_items.sql
      transaction: true
      execution_ms: 7
pending:
  description:
    - The files still to run (up to O(target_version)) when the module returned, in the
      order they would run.
    - In check mode, the files a real run would apply; after a successful run, empty; after
      a failure, the failed file and those after it.
  returned: always
  type: list
  elements: dict
  contains:
    version:
      description: Normalised version.
      type: str
      sample: "3"
    description:
      description: Description from the file name.
      type: str
      sample: seed items
    script:
      description: File name.
      type: str
      sample: V3__seed_items.sql
    transaction:
      description: Whether the file would run inside a transaction.
      type: bool
      sample: true
  sample:
    - version: "3"
      description: seed items
      script: V3__seed_items.sql
      transaction: true
current_version:
  description:
    - The highest version recorded in the history table when the module returned
      (a C(BASELINE) row counts); null when nothing is recorded.
    - In check mode, the version the database is at now.
  returned: always
  type: str
  sample: "3"
baseline:
  description: The baseline version this run recorded (would record, in check mode); null when none.
  returned: always
  type: str
  sample: "3"
history_table:
  description: Schema-qualified, quoted name of the history table.
  returned: always
  type: str
  sample: '"public"."cachestack_schema_history"'
diff:
  description: The recorded versions before and after the run.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: Versions recorded before the run.
      type: dict
      sample: {versions: ["1", "2"]}
    after:
      description: Versions recorded after the run (that would be, in check mode).
      type: dict
      sample: {versions: ["1", "2", "3"]}
  sample:
    before: {versions: ["1", "2"]}
    after: {versions: ["1", "2", "3"]}
"""

import contextlib
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.cachestack.aws.plugins.module_utils._migrate_plan import (
    Migration,
    MigrationError,
    build_plan,
    line_of,
    load_migrations,
    lock_key,
    parse_version,
    split_statements,
    version_str,
)
from ansible_collections.cachestack.aws.plugins.module_utils._postgresql import (
    connect,
    pg_error_text,
    postgresql_argument_spec,
    psycopg2,
)


class MigrationFailed(Exception):
    def __init__(self, migration: Migration, message: str, partial: bool = False) -> None:
        super().__init__(message)
        self.migration = migration
        # Statements before the failed one stay applied (a no-transaction file).
        self.partial = partial


class Migrator:
    """Reads the history table and applies files over one autocommit connection."""

    def __init__(self, module: AnsibleModule, conn: object) -> None:
        self.module = module
        self.conn = conn
        self.schema = module.params["history_schema"]
        self.table = module.params["history_table"]
        sql = psycopg2.sql
        self.table_ident = sql.Identifier(self.schema, self.table)
        self.table_name = self.table_ident.as_string(conn)
        self.lock_key = lock_key(self.schema, self.table)
        self.created_history = False

    def execute(self, query: object, params: object = None) -> list:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def reset_session(self) -> None:
        """Undo what a file's SET ROLE, SET SESSION AUTHORIZATION or SET left behind.

        RESET ALL alone is not enough: it skips role and session_authorization (PostgreSQL
        exempts both from it), so a file ending in SET ROLE would run the next file, its
        history insert and the rest of the run as that role. community.postgresql's
        session_role is a SET ROLE issued once after connecting, i.e. the same session
        state; this module has no such option, so the identity to return to is the one
        the connection started with: the authenticated login_user (RESET SESSION
        AUTHORIZATION, which any user may run), then its connection-time role (RESET ROLE:
        none, or one set by ALTER ROLE/DATABASE ... SET role), then the connection-time
        value of every other setting (RESET ALL; the client encoding is given at connect,
        so it stays). Session authorization goes first since changing it resets the role.
        Not DISCARD ALL: PostgreSQL refuses it inside a transaction block, where this runs
        for a transactional file (before its history row, so the reset commits or rolls
        back with the file), and it would release the session-level advisory lock
        (pg_advisory_lock) that guards the whole run.
        """
        self.execute("RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL")

    def acquire_lock(self, timeout: int) -> None:
        """Take the session-level advisory lock, waiting at most timeout seconds."""
        # A statement_timeout set on the role or database would cut the wait short.
        self.execute(
            "SELECT set_config('lock_timeout', %s, false),"
            " set_config('statement_timeout', '0', false)",
            (f"{timeout}s",),
        )
        try:
            self.execute("SELECT pg_advisory_lock(%s)", (self.lock_key,))
        except psycopg2.Error as e:
            if getattr(e, "pgcode", None) != "55P03":  # lock_not_available
                raise
            raise MigrationError(
                f"could not take the migration lock on {self.table_name} within {timeout} s:"
                f" another run holds it{self.lock_holder()}"
            ) from e
        finally:
            self.execute("RESET lock_timeout")
            self.execute("RESET statement_timeout")

    def lock_holder(self) -> str:
        unsigned = self.lock_key & 0xFFFFFFFFFFFFFFFF
        rows = self.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start::text"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            # Advisory locks are per database: the same key in another one is not ours.
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = %s AND l.objid::bigint = %s",
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        )
        if not rows:
            return ""
        pid, app, addr, since = rows[0]
        return (
            f" (backend pid {pid}, application {app or '-'}, client {addr or 'local'},"
            f" connected since {since})"
        )

    def release_lock(self) -> None:
        self.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))

    def history_exists(self) -> bool:
        return self.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table_name,))[0][0]

    def read_history(self) -> list:
        if not self.history_exists():
            return []
        query = psycopg2.sql.SQL(
            "SELECT version, description, type, script, checksum FROM {}"
        ).format(self.table_ident)
        try:
            rows = self.execute(query)
        except psycopg2.Error as e:
            raise MigrationError(
                f"cannot read the history table {self.table_name}: {pg_error_text(e)}"
            ) from e
        return [
            dict(version=r[0], description=r[1], type=r[2], script=r[3], checksum=r[4])
            for r in rows
        ]

    def ensure_history_table(self) -> None:
        sql = psycopg2.sql
        self.created_history = not self.history_exists()
        if not self.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL",
            (sql.Identifier(self.schema).as_string(self.conn),),
        )[0][0]:
            self.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
        self.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " version text PRIMARY KEY,"
                " description text NOT NULL,"
                " type text NOT NULL DEFAULT 'SQL' CHECK (type IN ('SQL', 'BASELINE')),"
                " script text,"
                " checksum text,"
                " applied_at timestamptz NOT NULL DEFAULT now(),"
                " execution_ms integer NOT NULL DEFAULT 0,"
                " applied_by text NOT NULL DEFAULT session_user)"
            ).format(self.table_ident)
        )

    def _insert(
        self,
        version: str,
        description: str,
        kind: str,
        script: object,
        checksum: object,
        execution_ms: int,
    ) -> None:
        self.execute(
            psycopg2.sql.SQL(
                "INSERT INTO {} (version, description, type, script, checksum, execution_ms,"
                " applied_by) VALUES (%s, %s, %s, %s, %s, %s, session_user)"
            ).format(self.table_ident),
            (version, description, kind, script, checksum, execution_ms),
        )

    def record_baseline(self, key: tuple) -> None:
        self._insert(version_str(key), "<< baseline >>", "BASELINE", None, None, 0)

    def apply(self, m: Migration) -> int:
        """Run one file and record it; return its execution time in ms."""
        offset = 0
        in_tx = False
        executed = 0
        phase = "run"
        try:
            started = time.monotonic()
            if m.transaction:
                self.execute("BEGIN")
                in_tx = True
                if m.sql.strip():
                    self.execute(m.sql)
            else:
                for stmt_offset, statement in split_statements(m.sql):
                    offset = stmt_offset
                    self.execute(statement)
                    executed += 1
            elapsed = round((time.monotonic() - started) * 1000)
            offset = None
            # Before the history row: it must be written as login_user, not as a role
            # the file switched to (see reset_session).
            self.reset_session()
            self._insert(m.version, m.description, "SQL", m.script, m.checksum, elapsed)
            if in_tx:
                phase = "commit"
                self.execute("COMMIT")
                in_tx = False
        except Exception as e:
            if in_tx:
                # The connection may be gone; the server then rolls back by itself.
                with contextlib.suppress(Exception):
                    self.execute("ROLLBACK")
            if phase == "commit":
                # Deferred constraints are checked at COMMIT, after the file's last line.
                where = "at commit (a deferred constraint of the file's changes)"
            elif offset is None:
                where = f"while recording it in {self.table_name}"
            else:
                position = getattr(getattr(e, "diag", None), "statement_position", None)
                try:
                    pos = offset + int(position) - 1
                except (TypeError, ValueError):
                    pos = offset
                where = f"at line {line_of(m.sql, pos)}"
            if m.transaction:
                outcome = "was rolled back"
            else:
                outcome = (
                    "was not recorded (the statements before it in this no-transaction"
                    " file stay applied)"
                )
            text = pg_error_text(e) if isinstance(e, psycopg2.Error) else to_native(e)
            raise MigrationFailed(
                m,
                f"version {m.version} ({m.script}) failed {where} and {outcome}: {text}",
                partial=not m.transaction and executed > 0,
            ) from e
        self.reset_session()
        return elapsed


def main() -> None:
    argument_spec = postgresql_argument_spec()
    argument_spec.update(
        path=dict(type="path", required=True),
        history_table=dict(type="str", default="cachestack_schema_history"),
        history_schema=dict(type="str", default="public"),
        target_version=dict(type="raw"),
        baseline_version=dict(type="raw"),
        on_checksum_mismatch=dict(type="str", default="fail", choices=["fail", "warn"]),
        out_of_order=dict(type="bool", default=False),
        lock_timeout=dict(type="int", default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    result = dict(changed=False, applied=[], pending=[], current_version=None, baseline=None)

    if p["lock_timeout"] < 0:
        module.fail_json(msg="lock_timeout must be 0 (wait forever) or more seconds", **result)
    try:
        for opt in ("target_version", "baseline_version"):
            if p[opt] not in (None, ""):
                parse_version(p[opt])
        migrations = load_migrations(p["path"])
    except (MigrationError, OSError) as e:
        module.fail_json(msg=to_native(e), **result)

    conn = connect(module, autocommit=True, readonly=module.check_mode)
    try:
        migrator = Migrator(module, conn)
        result["history_table"] = migrator.table_name
        try:
            if not module.check_mode:
                migrator.acquire_lock(p["lock_timeout"])
            history = migrator.read_history()
            keys = sorted(parse_version(r["version"]) for r in history)
            result["current_version"] = version_str(keys[-1]) if keys else None
            plan = build_plan(
                migrations,
                history,
                target_version=p["target_version"],
                baseline_version=p["baseline_version"],
                on_checksum_mismatch=p["on_checksum_mismatch"],
                out_of_order=p["out_of_order"],
            )
        except MigrationError as e:
            module.fail_json(msg=to_native(e), **result)
        for warning in plan.warnings:
            module.warn(warning)

        recorded = list(plan.recorded)
        before = [version_str(k) for k in recorded]
        result["current_version"] = before[-1] if before else None
        result["pending"] = [m.summary() for m in plan.pending]
        if plan.baseline is not None:
            result["baseline"] = version_str(plan.baseline)
        changed = bool(plan.pending) or plan.baseline is not None

        if module.check_mode:
            after = set(recorded) | {m.key for m in plan.pending}
            if plan.baseline is not None:
                after.add(plan.baseline)
        else:
            if changed:
                migrator.ensure_history_table()
            if plan.baseline is not None:
                migrator.record_baseline(plan.baseline)
                recorded.append(plan.baseline)
            remaining = list(plan.pending)
            while remaining:
                m = remaining[0]
                try:
                    ms = migrator.apply(m)
                except MigrationFailed as e:
                    result["pending"] = [x.summary() for x in remaining]
                    result["changed"] = (
                        bool(result["applied"])
                        or plan.baseline is not None
                        or migrator.created_history
                        or e.partial
                    )
                    result["current_version"] = version_str(max(recorded)) if recorded else None
                    module.fail_json(msg=to_native(e), **result)
                remaining.pop(0)
                recorded.append(m.key)
                summary = m.summary()
                summary["execution_ms"] = ms
                result["applied"].append(summary)
            result["pending"] = []
            after = set(recorded)
            if recorded:
                result["current_version"] = version_str(max(recorded))

        result["changed"] = changed
        if module._diff:
            result["diff"] = dict(
                before=dict(versions=before),
                after=dict(versions=[version_str(k) for k in sorted(after)]),
            )
        if not module.check_mode:
            migrator.release_lock()
    except psycopg2.Error as e:
        module.fail_json(msg=f"PostgreSQL error: {pg_error_text(e)}", **result)
    finally:
        conn.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
