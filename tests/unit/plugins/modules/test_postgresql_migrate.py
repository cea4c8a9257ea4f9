"""Pure logic of cachestack.aws.postgresql_migrate: names, versions, checksums, plans."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".collections"
assert (COLLECTIONS / "ansible_collections" / "cachestack" / "aws").resolve() == ROOT, (
    f"{COLLECTIONS}/ansible_collections/cachestack/aws must link to {ROOT}: run scripts/setup"
)
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _postgresql as pgu,
)
from ansible_collections.cachestack.aws.plugins.modules import (  # noqa: E402
    postgresql_migrate as pm,
)


def mig(version: str, sql: str = "SELECT 1;", script: str | None = None) -> pm.Migration:
    key = pm.parse_version(version)
    script = script or f"V{version}__step.sql"
    return pm.Migration(key, "step", script, sql, pm.sha256_hex(sql.encode()))


def row(m: pm.Migration, checksum: str | None = None) -> dict:
    return {
        "version": m.version,
        "type": "SQL",
        "script": m.script,
        "checksum": checksum or m.checksum,
        "description": m.description,
    }


# -- file names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "description"),
    [
        ("V1__create_items.sql", (1,), "create items"),
        ("V2.1__add_index.sql", (2, 1), "add index"),
        ("V2_1__add_index.sql", (2, 1), "add index"),
        ("V010__leading_zeros.sql", (10,), "leading zeros"),
        ("V3.0__trailing_zero.sql", (3,), "trailing zero"),
        ("V1__a__b.sql", (1,), "a  b"),
        ("V20260101.1200__timestamped.sql", (20260101, 1200), "timestamped"),
    ],
)
def test_parse_filename_valid(name: str, version: tuple, description: str) -> None:
    assert pm.parse_filename(name) == (version, description)


@pytest.mark.parametrize(
    "name",
    ["README.md", "R__views.sql", "U1__undo.sql", "v1__lower.sql", "V1__x.txt", "notes.sql"],
)
def test_parse_filename_ignores_other_files(name: str) -> None:
    assert pm.parse_filename(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "V1_create.sql",
        "V__nothing.sql",
        "Vx__letters.sql",
        "V1__.sql",
        "V1.__dot.sql",
        "V1__upper.SQL",
        "V1-2__dash.sql",
        "Vacuum.sql",
    ],
)
def test_parse_filename_malformed_names_the_file(name: str) -> None:
    with pytest.raises(pm.MigrationError, match=r"malformed migration file name") as exc:
        pm.parse_filename(name)
    assert name in str(exc.value)


# -- versions -------------------------------------------------------------------------------


def test_versions_compare_numerically() -> None:
    names = ["V10__j.sql", "V2__b.sql", "V1.10__x.sql", "V1.9__y.sql", "V1__a.sql"]
    keys = sorted(pm.parse_filename(n)[0] for n in names)
    assert [pm.version_str(k) for k in keys] == ["1", "1.9", "1.10", "2", "10"]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (3, (3,)),
        ("3", (3,)),
        ("V3", (3,)),
        ("3.0.0", (3,)),
        ("03", (3,)),
        ("1_2", (1, 2)),
        (2.5, (2, 5)),
        ("0", (0,)),
    ],
)
def test_parse_version(value: object, key: tuple) -> None:
    assert pm.parse_version(value) == key


@pytest.mark.parametrize("value", ["", "abc", "1..2", "1.x", "-1", True, None, "1 2"])
def test_parse_version_rejects(value: object) -> None:
    with pytest.raises(pm.MigrationError, match="invalid version"):
        pm.parse_version(value)


# -- directory loading and checksums ---------------------------------------------------------


def test_load_migrations_sorts_checksums_and_ignores(tmp_path: Path) -> None:
    (tmp_path / "V10__ten.sql").write_text("SELECT 10;")
    (tmp_path / "V2__two.sql").write_text("SELECT 2;")
    (tmp_path / "V1.5__one_and_a_half.sql").write_text("SELECT 1.5;")
    (tmp_path / "README.md").write_text("docs")
    (tmp_path / "V3__a_directory.sql").mkdir()
    found = pm.load_migrations(str(tmp_path))
    assert [m.script for m in found] == ["V1.5__one_and_a_half.sql", "V2__two.sql", "V10__ten.sql"]
    assert found[1].checksum == hashlib.sha256(b"SELECT 2;").hexdigest()
    assert found[0].description == "one and a half"
    assert all(m.transaction for m in found)


def test_checksum_is_of_the_exact_bytes(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_bytes(b"SELECT 1;\n")
    first = pm.load_migrations(str(tmp_path))[0].checksum
    (tmp_path / "V1__a.sql").write_bytes(b"SELECT 1;\r\n")
    assert pm.load_migrations(str(tmp_path))[0].checksum != first


def test_duplicate_versions_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("SELECT 1;")
    (tmp_path / "V1.0__b.sql").write_text("SELECT 1;")
    with pytest.raises(pm.MigrationError, match=r"V1\.0__b\.sql and V1__a\.sql|V1__a\.sql and"):
        pm.load_migrations(str(tmp_path))


def test_malformed_file_in_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("SELECT 1;")
    (tmp_path / "V2-b.sql").write_text("SELECT 1;")
    with pytest.raises(pm.MigrationError, match=r"V2-b\.sql"):
        pm.load_migrations(str(tmp_path))


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "V1__latin1.sql").write_bytes(b"SELECT '\xe9';")
    with pytest.raises(pm.MigrationError, match=r"V1__latin1\.sql is not valid UTF-8"):
        pm.load_migrations(str(tmp_path))


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(pm.MigrationError, match="does not exist"):
        pm.load_migrations(str(tmp_path / "nope"))


# -- the no-transaction marker ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("-- cachestack:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);", False),
        ("\n\n  -- cachestack:no-transaction  \nVACUUM;", False),
        ("\ufeff-- cachestack:no-transaction\nVACUUM;", False),
        ("--cachestack:no-transaction\nVACUUM;", False),
        ("SELECT 1;\n-- cachestack:no-transaction\n", True),
        ("-- cachestack:no-transactions\nSELECT 1;", True),
        ("-- note\n-- cachestack:no-transaction\nSELECT 1;", True),
        ("", True),
    ],
)
def test_no_transaction_marker(sql: str, expected: bool) -> None:
    assert mig("1", sql).transaction is expected


# -- statement splitting (no-transaction files) ----------------------------------------------


def statements(sql: str) -> list[str]:
    return [s.strip() for _offset, s in pm.split_statements(sql)]


def test_split_simple_and_offsets() -> None:
    sql = "SELECT 1;\nSELECT 2;\n  SELECT 3"
    parts = pm.split_statements(sql)
    assert [s.strip() for _o, s in parts] == ["SELECT 1;", "SELECT 2;", "SELECT 3"]
    for offset, text in parts:
        assert sql[offset : offset + len(text)] == text


def test_split_honours_quotes_and_comments() -> None:
    sql = (
        "-- cachestack:no-transaction\n"
        "INSERT INTO t VALUES ('a;b', 'it''s;', E'x\\';y');\n"
        'CREATE TABLE "odd;name" (c int); /* a; /* nested; */ still; */\n'
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;\n"
        "-- trailing comment; with semicolon\n"
    )
    assert statements(sql) == [
        "INSERT INTO t VALUES ('a;b', 'it''s;', E'x\\';y');",
        'CREATE TABLE "odd;name" (c int);',
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;",
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;",
    ]


def test_split_offsets_point_at_the_first_token() -> None:
    sql = "-- marker\nDROP INDEX i;\n\n/* why */ CREATE INDEX i ON t (c);\n"
    parts = pm.split_statements(sql)
    assert parts == [
        (sql.index("DROP"), "DROP INDEX i;"),
        (sql.index("CREATE"), "CREATE INDEX i ON t (c);"),
    ]
    assert pm.line_of(sql, parts[1][0]) == 4


def test_split_dollar_sign_outside_quotes() -> None:
    assert statements("SELECT a$b$c FROM t; PREPARE p AS SELECT $1; SELECT 2") == [
        "SELECT a$b$c FROM t;",
        "PREPARE p AS SELECT $1;",
        "SELECT 2",
    ]


def test_split_drops_empty_and_comment_only() -> None:
    assert statements(";;\n-- only a comment;\n/* block; */ ;") == []


def test_split_plain_backslash_is_not_an_escape() -> None:
    assert statements(r"SELECT 'C:\dir\'; SELECT 2;") == [r"SELECT 'C:\dir\';", "SELECT 2;"]


def split_checked(sql: str) -> list[str]:
    """The statements, stripped, after checking each offset points at its text in sql."""
    parts = pm.split_statements(sql)
    for offset, text in parts:
        assert sql[offset : offset + len(text)] == text
        assert not text[0].isspace()
    return [text.strip() for _offset, text in parts]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(
            "SELECT $$ a; b $$; SELECT 2;",
            ["SELECT $$ a; b $$;", "SELECT 2;"],
            id="dollar-quote",
        ),
        pytest.param(
            "SELECT $fn$ a; 'b; $$ c; $fn$; SELECT 2;",
            ["SELECT $fn$ a; 'b; $$ c; $fn$;", "SELECT 2;"],
            id="tagged-dollar-quote-holding-a-quote-and-$$",
        ),
        pytest.param(
            "SELECT $outer$ a; $inner$ b; $inner$ c; $$ d; $outer$; SELECT 2;",
            ["SELECT $outer$ a; $inner$ b; $inner$ c; $$ d; $outer$;", "SELECT 2;"],
            id="nested-different-tags",
        ),
        pytest.param(
            "SELECT $a$ x; $A$ y; $ab$ z; $a$; SELECT 2;",
            ["SELECT $a$ x; $A$ y; $ab$ z; $a$;", "SELECT 2;"],
            id="tags-are-case-sensitive-and-whole",
        ),
        pytest.param(
            "SELECT 'a;b', 'it''s; fine', ''';'; SELECT 2;",
            ["SELECT 'a;b', 'it''s; fine', ''';';", "SELECT 2;"],
            id="single-quotes-and-doubled-quotes",
        ),
        pytest.param(
            r"SELECT E'it\'s; x', e'\\'; SELECT 2;",
            [r"SELECT E'it\'s; x', e'\\';", "SELECT 2;"],
            id="escape-strings",
        ),
        pytest.param(
            'SELECT 1 AS "a;b", 2 AS "say ""hi;"""; SELECT 2;',
            ['SELECT 1 AS "a;b", 2 AS "say ""hi;""";', "SELECT 2;"],
            id="double-quoted-identifiers",
        ),
        pytest.param(
            "SELECT 1 -- not the end; really\n + 1; SELECT 2;",
            ["SELECT 1 -- not the end; really\n + 1;", "SELECT 2;"],
            id="line-comment",
        ),
        pytest.param(
            "SELECT 1 /* a; /* nested; */ still a comment; */ + 1; SELECT 2;",
            ["SELECT 1 /* a; /* nested; */ still a comment; */ + 1;", "SELECT 2;"],
            id="nested-block-comment",
        ),
        pytest.param(
            "DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'done; ok';\nEND\n$$;\nSELECT 2;",
            ["DO $$\nBEGIN\n  PERFORM 1;\n  RAISE NOTICE 'done; ok';\nEND\n$$;", "SELECT 2;"],
            id="do-block",
        ),
        pytest.param(
            "CREATE FUNCTION f(a int) RETURNS int AS $body$\nDECLARE\n  b int := 1;\n"
            "BEGIN\n  RETURN a + b;\nEND;\n$body$ LANGUAGE plpgsql;\nSELECT f(1);",
            [
                "CREATE FUNCTION f(a int) RETURNS int AS $body$\nDECLARE\n  b int := 1;\n"
                "BEGIN\n  RETURN a + b;\nEND;\n$body$ LANGUAGE plpgsql;",
                "SELECT f(1);",
            ],
            id="create-function-plpgsql",
        ),
        pytest.param(
            "SELECT 1;\nSELECT 2",
            ["SELECT 1;", "SELECT 2"],
            id="last-statement-without-semicolon",
        ),
        pytest.param(
            "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1);"
            " INSERT INTO b VALUES (2)); SELECT ')'; SELECT 3;",
            [
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1);"
                " INSERT INTO b VALUES (2));",
                "SELECT ')';",
                "SELECT 3;",
            ],
            id="semicolon-inside-parentheses",
        ),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_checked(sql) == expected


def test_split_a_file_of_everything() -> None:
    """All of the above in one no-transaction file, each statement found where it starts."""
    sql = (
        "-- cachestack:no-transaction\n"
        'CREATE TABLE "t;1" (v text); -- a; comment\n'
        "/* a; /* nested; */ comment; */\n"
        "INSERT INTO \"t;1\" VALUES ('a;''b'), (E'c\\';d'), ($$e;f$$), ($q$g;$$;h$q$);\n"
        "DO $do$\nBEGIN\n  EXECUTE $x$SELECT 1;$x$;\nEND\n$do$;\n"
        "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$"
        " LANGUAGE plpgsql;\n"
        "SELECT g()\n"
    )
    parts = pm.split_statements(sql)
    assert [pm.line_of(sql, offset) for offset, _text in parts] == [2, 4, 5, 10, 11]
    assert split_checked(sql) == [
        'CREATE TABLE "t;1" (v text);',
        "INSERT INTO \"t;1\" VALUES ('a;''b'), (E'c\\';d'), ($$e;f$$), ($q$g;$$;h$q$);",
        "DO $do$\nBEGIN\n  EXECUTE $x$SELECT 1;$x$;\nEND\n$do$;",
        "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;",
        "SELECT g()",
    ]


def test_line_of() -> None:
    text = "a\nbb\nccc"
    assert pm.line_of(text, 0) == 1
    assert pm.line_of(text, 2) == 2
    assert pm.line_of(text, text.index("ccc") + 1) == 3


# -- plans ------------------------------------------------------------------------------------


def test_plan_empty_history_everything_pending() -> None:
    files = [mig("1"), mig("2"), mig("10")]
    plan = pm.build_plan(files, [])
    assert [m.version for m in plan.pending] == ["1", "2", "10"]
    assert plan.baseline is None
    assert plan.warnings == []


def test_plan_only_new_files_pending() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    plan = pm.build_plan(files, [row(files[0]), row(files[1])])
    assert [m.version for m in plan.pending] == ["3"]
    assert [pm.version_str(k) for k in plan.recorded] == ["1", "2"]


def test_plan_nothing_pending() -> None:
    files = [mig("1"), mig("2")]
    assert pm.build_plan(files, [row(f) for f in files]).pending == []


def test_plan_checksum_mismatch_fails_naming_version() -> None:
    files = [mig("1"), mig("2", "SELECT 'edited';"), mig("3")]
    history = [row(files[0]), row(files[1], checksum="0" * 64)]
    with pytest.raises(
        pm.MigrationError, match=r"checksum mismatch for version 2 \(V2__step.sql\)"
    ):
        pm.build_plan(files, history)


def test_plan_checksum_mismatch_warn_continues() -> None:
    files = [mig("1"), mig("2", "SELECT 'edited';"), mig("3")]
    history = [row(files[0]), row(files[1], checksum="0" * 64)]
    plan = pm.build_plan(files, history, on_checksum_mismatch="warn")
    assert [m.version for m in plan.pending] == ["3"]
    assert len(plan.warnings) == 1
    assert "version 2" in plan.warnings[0]


def test_plan_recorded_file_missing_warns() -> None:
    files = [mig("1"), mig("3")]
    gone = mig("2")
    plan = pm.build_plan(files, [row(files[0]), row(gone), row(files[1])])
    assert plan.pending == []
    assert plan.warnings == [
        "version 2 (V2__step.sql) is recorded in the history table but its file is missing "
        "from the directory"
    ]


def test_plan_target_version_stops_early() -> None:
    files = [mig("1"), mig("2"), mig("2.5"), mig("3")]
    plan = pm.build_plan(files, [], target_version="2.5")
    assert [m.version for m in plan.pending] == ["1", "2", "2.5"]
    assert pm.build_plan(files, [row(f) for f in files[:3]], target_version=2).pending == []


def test_plan_baseline_on_empty_history() -> None:
    files = [mig("1"), mig("2"), mig("3"), mig("4")]
    plan = pm.build_plan(files, [], baseline_version=2)
    assert plan.baseline == (2,)
    assert [m.version for m in plan.pending] == ["3", "4"]


def test_plan_baseline_ignored_once_history_has_rows() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    plan = pm.build_plan(files, [row(files[0])], baseline_version=2)
    assert plan.baseline is None
    assert [m.version for m in plan.pending] == ["2", "3"]


def test_plan_recorded_baseline_covers_older_files() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    base = {"version": "2", "type": "BASELINE", "script": None, "checksum": None}
    plan = pm.build_plan(files, [base])
    assert [m.version for m in plan.pending] == ["3"]
    assert plan.warnings == []  # neither checksum nor missing-file checks for a baseline


def test_plan_late_old_file_is_an_error_unless_out_of_order() -> None:
    files = [mig("1"), mig("1.5"), mig("2")]
    history = [row(files[0]), row(files[2])]
    with pytest.raises(pm.MigrationError, match=r"V1\.5__step\.sql.*out_of_order"):
        pm.build_plan(files, history)
    plan = pm.build_plan(files, history, out_of_order=True)
    assert [m.version for m in plan.pending] == ["1.5"]


def test_plan_versions_match_across_spellings() -> None:
    files = [mig("1.0", script="V1.0__step.sql")]
    assert pm.build_plan(files, [{**row(files[0]), "version": "1"}]).pending == []


# -- locks and connection helpers -------------------------------------------------------------


def test_lock_key_is_stable_signed_64_bit_and_per_table() -> None:
    key = pm.lock_key("public", "cachestack_schema_history")
    assert key == pm.lock_key("public", "cachestack_schema_history")
    assert -(2**63) <= key < 2**63
    assert key != pm.lock_key("app", "cachestack_schema_history")
    assert key != pm.lock_key("public", "other_history")


def test_conn_params_maps_options_and_drops_empty() -> None:
    params = {
        "login_host": "db.example",
        "login_port": 5433,
        "login_user": "app",
        "login_password": "s3cret",
        "login_db": "app",
        "login_unix_socket": "",
        "ssl_mode": "verify-full",
        "ca_cert": None,
        "connect_timeout": 7,
    }
    assert pgu.conn_params(params) == {
        "host": "db.example",
        "port": 5433,
        "user": "app",
        "password": "s3cret",
        "dbname": "app",
        "sslmode": "verify-full",
        "connect_timeout": 7,
        "application_name": "cachestack.aws",
    }


def test_conn_params_unix_socket_when_no_host() -> None:
    params = {"login_host": "", "login_unix_socket": "/run/postgresql", "login_password": ""}
    assert pgu.conn_params(params)["host"] == "/run/postgresql"
    assert "password" not in pgu.conn_params(params)


def test_scrub_masks_the_password() -> None:
    assert pgu.scrub("password=hunter2 host=x", "hunter2") == "password=******** host=x"
    assert pgu.scrub("nothing", "") == "nothing"


def test_argument_spec_marks_the_password_no_log() -> None:
    spec = pgu.postgresql_argument_spec()
    assert spec["login_password"]["no_log"] is True
    assert set(spec) >= {
        "login_host",
        "login_port",
        "login_user",
        "login_password",
        "login_db",
        "ssl_mode",
        "ca_cert",
        "connect_timeout",
    }
