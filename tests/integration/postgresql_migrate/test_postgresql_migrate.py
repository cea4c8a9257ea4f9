"""cachestack.aws.postgresql_migrate against a real PostgreSQL, through ansible-playbook."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .conftest import Migrate, module_lock_key

V1 = "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n"
V2 = "INSERT INTO items (name) VALUES ('apple'), ('pear');\n"
V3 = "ALTER TABLE items ADD COLUMN price numeric NOT NULL DEFAULT 0;\n"
V4 = "CREATE TABLE orders (id serial PRIMARY KEY, item_id int REFERENCES items);\n"
SEED_CAFE = "INSERT INTO items (name) VALUES ('café');\n"
SAVEPOINT_AND_DO_BLOCK = """SAVEPOINT before_seed;
INSERT INTO items (name) VALUES ('gone');
ROLLBACK TO SAVEPOINT before_seed;
RELEASE SAVEPOINT before_seed;
DO $$
BEGIN
  INSERT INTO items (name) VALUES ('kept');
END
$$;
"""
DEFERRED_ORDERS = """CREATE TABLE deferred_orders (
  id int PRIMARY KEY,
  item_id int REFERENCES items DEFERRABLE INITIALLY DEFERRED
);
"""
ORPHAN_ORDER = "INSERT INTO deferred_orders VALUES (1, 42);\n"
HALF_APPLIED = """-- cachestack:no-transaction
CREATE TABLE c1 (id int);
INSERT INTO nowhere VALUES (1);
"""


def hold_the_migration_lock(migrate: Migrate) -> Any:
    """A session of our own holding the module's advisory lock (close it to release)."""
    holder = migrate.db.connect()
    with holder.cursor() as cur:
        cur.execute(
            "SELECT pg_advisory_lock(%s)",
            (module_lock_key("public", "cachestack_schema_history"),),
        )
    return holder


def test_check_apply_check_apply(migrate: Migrate) -> None:
    """Check mode on an empty database changes nothing; apply once; then nothing to do."""
    migrate.query("CREATE SEQUENCE probe")
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    # If any statement of this file ran, even in a rolled-back transaction, the
    # (non-transactional) sequence would have moved.
    migrate.write("V10__probe.sql", "SELECT nextval('probe');\n")
    migrate.write("README.md", "not a migration\n")

    plan = migrate.run(check=True, diff=True)
    assert plan.rc == 0, plan.msg
    assert plan.changed
    assert plan.pending == ["1", "2", "10"]
    assert plan.applied == []
    assert plan.result["current_version"] is None
    assert plan.result["diff"]["before"]["versions"] == []
    assert plan.result["diff"]["after"]["versions"] == ["1", "2", "10"]
    assert not migrate.exists("public.cachestack_schema_history")
    assert not migrate.exists("public.items")
    assert migrate.query("SELECT last_value, is_called FROM probe") == [(1, False)]

    first = migrate.run(diff=True)
    assert first.rc == 0, first.msg
    assert first.changed
    assert first.applied == ["1", "2", "10"]
    assert first.pending == []
    assert first.result["current_version"] == "10"
    assert first.result["diff"]["after"]["versions"] == ["1", "2", "10"]
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]
    assert migrate.query("SELECT last_value, is_called FROM probe") == [(1, True)]
    rows = migrate.query(
        "SELECT version, description, type, script, checksum, execution_ms >= 0,"
        " applied_by, applied_at <= now() FROM cachestack_schema_history ORDER BY applied_at"
    )
    assert rows == [
        ("1", "create items", "SQL", "V1__create_items.sql",
         hashlib.sha256(V1.encode()).hexdigest(), True, migrate.db.user, True),
        ("2", "seed items", "SQL", "V2__seed_items.sql",
         hashlib.sha256(V2.encode()).hexdigest(), True, migrate.db.user, True),
        ("10", "probe", "SQL", "V10__probe.sql",
         hashlib.sha256(b"SELECT nextval('probe');\n").hexdigest(), True, migrate.db.user, True),
    ]  # fmt: skip
    assert all(isinstance(a["execution_ms"], int) for a in first.result["applied"])

    again = migrate.run(check=True, diff=True)
    assert again.rc == 0, again.msg
    assert not again.changed
    assert again.pending == []
    assert again.result["current_version"] == "10"

    second = migrate.run()
    assert second.rc == 0, second.msg
    assert not second.changed
    assert second.applied == []
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]
    assert migrate.history_versions() == ["1", "2", "10"]


def test_new_file_added_later_only_it_runs(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    assert migrate.run_module().applied == ["1", "2"]
    before = migrate.query("SELECT version, applied_at FROM cachestack_schema_history")

    migrate.write("V3__add_price.sql", V3)
    later = migrate.run_module()
    assert later.rc == 0, later.msg
    assert later.changed
    assert later.applied == ["3"]
    assert later.result["current_version"] == "3"
    after = migrate.query("SELECT version, applied_at FROM cachestack_schema_history")
    assert set(before) < set(after)
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]  # V2 did not run again


def test_broken_file_stops_the_run_and_leaves_nothing(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    broken = "CREATE TABLE v3_half (id int);\nINSERT INTO no_such_table VALUES (1);\n"
    migrate.write("V3__broken.sql", broken)
    migrate.write("V4__orders.sql", V4)

    failed = migrate.run()
    assert failed.rc != 0
    assert failed.failed
    assert "V3__broken.sql" in failed.msg
    assert "version 3" in failed.msg
    assert 'relation "no_such_table" does not exist' in failed.msg
    assert "failed at line 2 and was rolled back" in failed.msg
    assert failed.applied == ["1", "2"]
    assert failed.pending == ["3", "4"]
    assert failed.result["current_version"] == "2"
    assert not migrate.exists("public.v3_half")
    assert not migrate.exists("public.orders")
    assert migrate.history_versions() == ["1", "2"]
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]

    migrate.write("V3__broken.sql", "CREATE TABLE v3_half (id int);\n")
    fixed = migrate.run()
    assert fixed.rc == 0, fixed.msg
    assert fixed.applied == ["3", "4"]
    assert migrate.exists("public.v3_half")
    assert migrate.exists("public.orders")
    assert migrate.history_versions() == ["1", "2", "3", "4"]


def test_edited_applied_file_fails_or_warns(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    assert migrate.run_module().applied == ["1", "2"]

    migrate.write("V2__seed_items.sql", V2 + "-- edited after it ran\n")
    migrate.write("V3__add_price.sql", V3)
    failed = migrate.run_module()
    assert failed.rc != 0
    assert "checksum mismatch for version 2 (V2__seed_items.sql)" in failed.msg
    assert failed.applied == []
    assert failed.result["current_version"] == "2"
    assert migrate.history_versions() == ["1", "2"]  # V3 did not run either

    warned = migrate.run_module(on_checksum_mismatch="warn")
    assert warned.rc == 0, warned.msg
    assert warned.changed
    assert warned.applied == ["3"]
    assert any("checksum mismatch for version 2" in w for w in warned.warnings), warned.warnings
    assert migrate.history_versions() == ["1", "2", "3"]


def advisory_lock_sessions(migrate: Migrate) -> list[tuple[int, bool, str]]:
    """(pid, granted, current query) of each session holding or awaiting the module's
    advisory lock on the default history table, in this database."""
    unsigned = module_lock_key("public", "cachestack_schema_history") & 0xFFFFFFFFFFFFFFFF
    return migrate.query(
        "SELECT l.pid, l.granted, a.query FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s ORDER BY l.granted DESC",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    )


def wait_for(condition: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)
    return found


def test_two_playbooks_started_at_the_same_moment(migrate: Migrate) -> None:
    # One run takes the lock and applies the files; the other's session is seen waiting
    # for that lock while the first is inside V2, and then finds nothing to do: every
    # version is applied once, by the first.
    migrate.write("V1__create_items.sql", V1)
    # Longer than the ansible-playbook start-up, so the second run reaches the lock in time.
    migrate.write("V2__slow_seed.sql", "SELECT pg_sleep(8);\n" + V2)
    migrate.write("V3__add_price.sql", V3)

    started = [migrate.start(), migrate.start()]

    def holder_in_v2_and_a_waiter() -> list[tuple[int, bool, str]]:
        sessions = advisory_lock_sessions(migrate)
        holding = [s for s in sessions if s[1] and "pg_sleep" in s[2]]
        return sessions if holding and any(not s[1] for s in sessions) else []

    sessions = wait_for(holder_in_v2_and_a_waiter, "one run waiting while the other runs V2")
    granted = [pid for pid, is_granted, _query in sessions if is_granted]
    waiting = [pid for pid, is_granted, _query in sessions if not is_granted]
    assert len(granted) == 1 and len(waiting) == 1 and waiting != granted, sessions
    assert migrate.history_versions() == ["1"]  # the holder is in the middle of V2
    # The wait ends only once the holder has applied everything and let the lock go.
    wait_for(
        lambda: not [s for s in advisory_lock_sessions(migrate) if not s[1]],
        "the waiting run's wait ending",
    )
    assert migrate.history_versions() == ["1", "2", "3"]
    runs = [migrate.finish(run) for run in started]

    assert [r.rc for r in runs] == [0, 0], [r.msg for r in runs]
    assert sorted(r.changed for r in runs) == [False, True]
    winner = next(r for r in runs if r.changed)
    waiter = next(r for r in runs if not r.changed)
    assert winner.applied == ["1", "2", "3"]
    assert waiter.applied == []
    assert waiter.pending == []
    assert waiter.result["current_version"] == "3"
    assert migrate.query(
        "SELECT version, count(*) FROM cachestack_schema_history GROUP BY version ORDER BY 1"
    ) == [("1", 1), ("2", 1), ("3", 1)]
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]


def test_transactional_and_no_transaction_files_in_one_run(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1 + V2)
    migrate.write(
        "V2__index_concurrently.sql",
        "-- cachestack:no-transaction\n"
        "-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block.\n"
        "CREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n"
        "CREATE INDEX CONCURRENTLY items_id_name_idx ON items (id, name);\n",
    )
    migrate.write("V3__add_price.sql", V3)

    run = migrate.run_module()
    assert run.rc == 0, run.msg
    assert run.applied == ["1", "2", "3"]
    assert [a["transaction"] for a in run.result["applied"]] == [True, False, True]
    assert migrate.query(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname LIKE 'items_%%_idx' ORDER BY 1"
    ) == [("items_id_name_idx", True), ("items_name_idx", True)]
    assert migrate.history_versions() == ["1", "2", "3"]


def test_failed_no_transaction_file_is_not_recorded_and_is_retried(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1 + V2.replace("apple", "pear"))  # duplicate names
    migrate.write(
        "V2__unique_name.sql",
        "-- cachestack:no-transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS items_name_uq;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY items_name_uq ON items (name);\n",
    )
    failed = migrate.run_module()
    assert failed.rc != 0
    assert "version 2 (V2__unique_name.sql) failed at line 3" in failed.msg
    assert 'could not create unique index "items_name_uq"' in failed.msg
    assert failed.applied == ["1"]
    assert failed.pending == ["2"]
    assert migrate.history_versions() == ["1"]
    # PostgreSQL leaves the failed concurrent build behind as an invalid index ...
    assert migrate.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_name_uq'::regclass"
    ) == [(False,)]

    migrate.query("DELETE FROM items WHERE id = (SELECT max(id) FROM items)")
    retried = migrate.run_module()
    assert retried.rc == 0, retried.msg
    assert retried.applied == ["2"]
    # ... which the file's DROP INDEX CONCURRENTLY IF EXISTS clears on the retry.
    assert migrate.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_name_uq'::regclass"
    ) == [(True,)]
    assert migrate.history_versions() == ["1", "2"]


def test_concurrently_without_marker_fails_cleanly(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__index.sql", "CREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n")
    run = migrate.run_module()
    assert run.rc != 0
    assert "V2__index.sql" in run.msg
    assert "cannot run inside a transaction block" in run.msg
    assert migrate.history_versions() == ["1"]


def test_wrong_password_fails_without_revealing_it(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    wrong = "Wr0ng-Pa55word-7fe1c2"
    # Through Ansible (which masks no_log values) and straight from the module (which must
    # not echo the password by itself).
    for run in (migrate.run(login_password=wrong), migrate.run_module(login_password=wrong)):
        assert run.rc != 0
        assert run.failed
        assert "unable to connect to database" in run.msg
        assert 'password authentication failed for user "cachestack_admin"' in run.msg
        assert wrong not in run.stdout + run.stderr
        assert migrate.db.password not in run.stdout + run.stderr
    assert not migrate.exists("public.items")


def test_baseline_adopts_an_existing_database(migrate: Migrate) -> None:
    migrate.query(V1 + V2)  # the schema V1 and V2 would have made, made by hand
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    migrate.write("V3__add_price.sql", V3)

    plan = migrate.run_module(check=True, baseline_version=2)
    assert plan.rc == 0, plan.msg
    assert plan.changed
    assert plan.pending == ["3"]
    assert plan.result["baseline"] == "2"
    assert not migrate.exists("public.cachestack_schema_history")

    run = migrate.run_module(baseline_version=2)
    assert run.rc == 0, run.msg
    assert run.applied == ["3"]
    assert run.result["baseline"] == "2"
    assert migrate.history() == [("2", "BASELINE"), ("3", "SQL")]
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]

    again = migrate.run_module(baseline_version=2)
    assert again.rc == 0, again.msg
    assert not again.changed
    assert again.warnings == []


def test_target_version_and_custom_history_table(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2__seed_items.sql", V2)
    migrate.write("V2.1__add_price.sql", V3)
    migrate.write("V10__orders.sql", V4)
    custom = {"history_schema": "meta", "history_table": "versions"}

    partial = migrate.run_module(target_version="2", **custom)
    assert partial.rc == 0, partial.msg
    assert partial.applied == ["1", "2"]
    assert partial.pending == []
    assert partial.result["history_table"] == '"meta"."versions"'
    assert not migrate.exists("public.cachestack_schema_history")
    assert [v for v, _t in migrate.history("meta", "versions")] == ["1", "2"]

    rest = migrate.run_module(**custom)
    assert rest.rc == 0, rest.msg
    assert rest.applied == ["2.1", "10"]
    assert rest.result["current_version"] == "10"


def test_lock_held_elsewhere_times_out(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    holder = hold_the_migration_lock(migrate)
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        t0 = time.monotonic()
        run = migrate.run_module(lock_timeout=1)
        assert run.rc != 0
        assert "could not take the migration lock" in run.msg
        assert f"backend pid {pid}" in run.msg
        assert time.monotonic() - t0 < 30
        assert not migrate.exists("public.items")
    finally:
        holder.close()


def test_missing_psycopg2_gives_missing_required_lib(migrate: Migrate, tmp_path: Path) -> None:
    hidden = tmp_path / "no-psycopg2" / "psycopg2"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('psycopg2 hidden by the test')\n")
    migrate.write("V1__create_items.sql", V1)
    # Under Mitogen the module shares a Python that already imported psycopg2.
    run = migrate.run(environment={"PYTHONPATH": str(hidden.parent)}, plain_ansible=True)
    assert run.rc != 0
    assert "Failed to import the required Python library (psycopg2)" in run.msg
    assert not migrate.exists("public.items")


def test_malformed_file_name_is_named(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.write("V2-seed.sql", V2)
    run = migrate.run_module()
    assert run.rc != 0
    assert "V2-seed.sql" in run.msg
    assert not migrate.exists("public.items")


def test_a_transactional_file_with_its_own_commit_is_refused_before_any_change(
    migrate: Migrate,
) -> None:
    migrate.write("V1__create_items.sql", V1)
    # Run inside the module's transaction, its COMMIT would keep table y, and the failing
    # INSERT after it would leave the file half applied and unrecorded.
    migrate.write(
        "V2__wrapped.sql",
        "BEGIN;\nCREATE TABLE y (id int);\nCOMMIT;\nINSERT INTO y VALUES ('oops');\n",
    )
    run = migrate.run_module()
    assert run.rc != 0
    assert "V2__wrapped.sql line 1: BEGIN of its own" in run.msg
    assert "-- cachestack:no-transaction" in run.msg
    assert not run.changed
    assert not migrate.exists("public.items")
    assert not migrate.exists("public.y")
    assert not migrate.exists("public.cachestack_schema_history")


def test_savepoints_and_plpgsql_blocks_are_not_transaction_control(migrate: Migrate) -> None:
    migrate.write("V1__blocks.sql", V1 + SAVEPOINT_AND_DO_BLOCK)
    run = migrate.run_module()
    assert run.rc == 0, run.msg
    assert migrate.query("SELECT name FROM items") == [("kept",)]


def test_a_file_with_a_byte_order_mark_runs(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", "\ufeff" + V1)
    migrate.write("V2__index.sql", "\ufeff-- cachestack:no-transaction\n" + V2)
    run = migrate.run_module()
    assert run.rc == 0, run.msg
    assert run.applied == ["1", "2"]
    assert migrate.query("SELECT count(*) FROM items") == [(2,)]


def test_text_keeps_its_encoding_in_a_latin1_database(migrate: Migrate) -> None:
    latin1 = f"{migrate.db.name}_latin1"
    migrate.query(
        f"CREATE DATABASE {latin1} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )
    migrate.write("V1__create_items.sql", V1 + SEED_CAFE)
    migrate.write("V2__more.sql", SEED_CAFE)
    run = migrate.run_module(login_db=latin1)
    assert run.rc == 0, run.msg
    rows = migrate.db.server.execute("SELECT name FROM items ORDER BY id", dbname=latin1)
    assert rows == [("café",), ("café",)]


def test_a_statement_timeout_on_the_role_does_not_cut_the_lock_wait(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1)
    migrate.query(
        f"ALTER ROLE {migrate.db.user} IN DATABASE {migrate.db.name} SET statement_timeout = '1s'"
    )
    holder = hold_the_migration_lock(migrate)
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(migrate.run_module, lock_timeout=60)
            time.sleep(3)  # three times the role's statement_timeout
            holder.close()
            run = waiting.result(timeout=60)
    finally:
        holder.close()
        migrate.query(f"ALTER ROLE {migrate.db.user} IN DATABASE {migrate.db.name} RESET ALL")
    assert run.rc == 0, run.msg
    assert migrate.history_versions() == ["1"]


def test_a_failure_after_changes_reports_changed(migrate: Migrate) -> None:
    migrate.write("V1__half.sql", HALF_APPLIED)
    half = migrate.run_module()
    assert half.rc != 0
    assert half.changed, "table c1 and the history table were made"
    assert migrate.exists("public.c1")
    assert migrate.history_versions() == []


def test_a_deferred_constraint_failing_at_commit_is_named_as_such(migrate: Migrate) -> None:
    migrate.write("V1__create_items.sql", V1 + DEFERRED_ORDERS)
    migrate.write("V2__orphan.sql", ORPHAN_ORDER)
    run = migrate.run_module()
    assert run.rc != 0
    assert "version 2 (V2__orphan.sql) failed at commit (a deferred constraint" in run.msg
    assert "was rolled back" in run.msg
    assert "violates foreign key constraint" in run.msg
    assert migrate.history_versions() == ["1"]
    assert migrate.query("SELECT count(*) FROM deferred_orders") == [(0,)]
