"""Unit tests for plugins/module_utils/_migrate_plan.py, the pure logic of
cachestack.aws.postgresql_migrate: file names, versions, checksums, the statement splitter
and plans. Nothing here needs a PostgreSQL server (the splitter's hard cases also run
against one in tests/integration/postgresql_migrate/test_postgresql_migrate_splitter.py).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _migrate_plan as mp,
)


def mig(version: str, sql: str = "SELECT 1;", script: str | None = None) -> mp.Migration:
    key = mp.parse_version(version)
    script = script or f"V{version}__step.sql"
    return mp.Migration(key, "step", script, sql, mp.sha256_hex(sql.encode()))


def row(m: mp.Migration, checksum: str | None = None) -> dict:
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
    assert mp.parse_filename(name) == (version, description)


@pytest.mark.parametrize(
    "name",
    ["README.md", "R__views.sql", "U1__undo.sql", "v1__lower.sql", "V1__x.txt", "notes.sql"],
)
def test_parse_filename_ignores_other_files(name: str) -> None:
    assert mp.parse_filename(name) is None


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
    with pytest.raises(mp.MigrationError, match=r"malformed migration file name") as exc:
        mp.parse_filename(name)
    assert name in str(exc.value)


# -- versions -------------------------------------------------------------------------------


def test_versions_compare_numerically() -> None:
    names = ["V10__j.sql", "V2__b.sql", "V1.10__x.sql", "V1.9__y.sql", "V1__a.sql"]
    keys = sorted(mp.parse_filename(n)[0] for n in names)
    assert [mp.version_str(k) for k in keys] == ["1", "1.9", "1.10", "2", "10"]


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
    assert mp.parse_version(value) == key


@pytest.mark.parametrize("value", ["", "abc", "1..2", "1.x", "-1", True, None, "1 2"])
def test_parse_version_rejects(value: object) -> None:
    with pytest.raises(mp.MigrationError, match="invalid version"):
        mp.parse_version(value)


@pytest.mark.parametrize("spelling", ["1", "01", "1.0", "1_0", "1.0.0", "V1", 1, 1.0])
def test_spellings_of_one_version_are_equal(spelling: object) -> None:
    assert mp.parse_version(spelling) == (1,)
    assert mp.version_str(mp.parse_version(spelling)) == "1"


def test_v2_runs_before_v10(tmp_path: Path) -> None:
    for name in ("V10__ten.sql", "V9__nine.sql", "V2__two.sql", "V1.10__x.sql", "V1.2__y.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    found = mp.load_migrations(str(tmp_path))
    assert [m.version for m in found] == ["1.2", "1.10", "2", "9", "10"]


def test_a_yaml_float_loses_its_trailing_zero() -> None:
    """The pitfall the docs warn about: YAML's 1.10 reaches the module as the float 1.1."""
    assert mp.parse_version(1.10) == (1, 1)
    assert mp.parse_version("1.10") == (1, 10)


# -- directory loading and checksums ---------------------------------------------------------


def test_load_migrations_sorts_checksums_and_ignores(tmp_path: Path) -> None:
    (tmp_path / "V10__ten.sql").write_text("SELECT 10;")
    (tmp_path / "V2__two.sql").write_text("SELECT 2;")
    (tmp_path / "V1.5__one_and_a_half.sql").write_text("SELECT 1.5;")
    (tmp_path / "README.md").write_text("docs")
    (tmp_path / "V3__a_directory.sql").mkdir()
    found = mp.load_migrations(str(tmp_path))
    assert [m.script for m in found] == ["V1.5__one_and_a_half.sql", "V2__two.sql", "V10__ten.sql"]
    assert found[1].checksum == hashlib.sha256(b"SELECT 2;").hexdigest()
    assert found[0].description == "one and a half"
    assert all(m.transaction for m in found)


def test_checksum_is_of_the_exact_bytes(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_bytes(b"SELECT 1;\n")
    first = mp.load_migrations(str(tmp_path))[0].checksum
    (tmp_path / "V1__a.sql").write_bytes(b"SELECT 1;\r\n")
    assert mp.load_migrations(str(tmp_path))[0].checksum != first


def test_duplicate_versions_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("SELECT 1;")
    (tmp_path / "V1.0__b.sql").write_text("SELECT 1;")
    with pytest.raises(mp.MigrationError, match=r"V1\.0__b\.sql and V1__a\.sql|V1__a\.sql and"):
        mp.load_migrations(str(tmp_path))


def test_malformed_file_in_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "V1__a.sql").write_text("SELECT 1;")
    (tmp_path / "V2-b.sql").write_text("SELECT 1;")
    with pytest.raises(mp.MigrationError, match=r"V2-b\.sql"):
        mp.load_migrations(str(tmp_path))


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "V1__latin1.sql").write_bytes(b"SELECT '\xe9';")
    with pytest.raises(mp.MigrationError, match=r"V1__latin1\.sql is not valid UTF-8"):
        mp.load_migrations(str(tmp_path))


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(mp.MigrationError, match="does not exist"):
        mp.load_migrations(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("V01__a.sql", "V1__b.sql"),
        ("V1__a.sql", "V1.0__b.sql"),
        ("V01__a.sql", "V1.0__b.sql"),
        ("V1_0__a.sql", "V1__b.sql"),
        ("V2.1__a.sql", "V2_1__b.sql"),
        ("V2.01__a.sql", "V2.1.0__b.sql"),
    ],
)
def test_spellings_of_one_version_in_two_files_are_an_error(
    tmp_path: Path, first: str, second: str
) -> None:
    (tmp_path / first).write_text("SELECT 1;")
    (tmp_path / second).write_text("SELECT 2;")
    with pytest.raises(mp.MigrationError, match="both carry version") as exc:
        mp.load_migrations(str(tmp_path))
    assert first in str(exc.value)
    assert second in str(exc.value)


def test_sha256_hex() -> None:
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert mp.sha256_hex(b"") == empty
    assert mp.sha256_hex(b"SELECT 1;") == hashlib.sha256(b"SELECT 1;").hexdigest()


def test_a_byte_order_mark_is_dropped_from_the_sql_but_not_the_checksum(tmp_path: Path) -> None:
    data = "\ufeff-- cachestack:no-transaction\nVACUUM;\n".encode()
    (tmp_path / "V1__bom.sql").write_bytes(data)
    (m,) = mp.load_migrations(str(tmp_path))
    assert m.sql == "-- cachestack:no-transaction\nVACUUM;\n"
    assert m.checksum == hashlib.sha256(data).hexdigest()
    assert m.transaction is False


def test_migration_summary() -> None:
    m = mp.Migration((2, 1), "add index", "V2.1__add_index.sql", "SELECT 1;", "c" * 64)
    assert m.summary() == {
        "version": "2.1",
        "description": "add index",
        "script": "V2.1__add_index.sql",
        "transaction": True,
    }
    marked = mp.Migration(
        (3,), "index", "V3__index.sql", "-- cachestack:no-transaction\n", "d" * 64
    )
    assert marked.summary()["transaction"] is False


# -- transaction control in a transactional file ----------------------------------------------


@pytest.mark.parametrize(
    ("sql", "keyword", "line"),
    [
        ("BEGIN;\nCREATE TABLE t (c int);\nCOMMIT;\n", "BEGIN", 1),
        ("CREATE TABLE t (c int);\nCOMMIT;\nCREATE TABLE u (c int);\n", "COMMIT", 2),
        ("SELECT 1;\n\n  commit work;", "COMMIT", 3),
        ("SELECT 1;\nCOMMIT AND CHAIN;", "COMMIT", 2),
        ("start  transaction;\nSELECT 1;", "START  TRANSACTION", 1),
        ("SELECT 1;\nEND;", "END", 2),
        ("SELECT 1;\nABORT;", "ABORT", 2),
        ("SELECT 1;\nROLLBACK;", "ROLLBACK", 2),
        ("SELECT 1;\nROLLBACK AND CHAIN;", "ROLLBACK", 2),
        ("-- a comment\n/* another */ Begin;", "BEGIN", 2),
    ],
)
def test_transaction_control_in_a_transactional_file_is_refused(
    tmp_path: Path, sql: str, keyword: str, line: int
) -> None:
    (tmp_path / "V1__own_tx.sql").write_text(sql)
    with pytest.raises(mp.MigrationError) as exc:
        mp.load_migrations(str(tmp_path))
    assert str(exc.value).startswith(f"V1__own_tx.sql line {line}: {keyword} of its own")
    assert "-- cachestack:no-transaction" in str(exc.value)


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("SAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;", id="rollback-to"),
        pytest.param("SAVEPOINT s;\nROLLBACK TO s;\nRELEASE SAVEPOINT s;", id="rollback-to-s"),
        pytest.param("SAVEPOINT s;\nROLLBACK WORK TO SAVEPOINT s;", id="rollback-work-to"),
        pytest.param("DO $$ BEGIN PERFORM 1; END $$;", id="begin-end-in-a-do-block"),
        pytest.param(
            "CREATE FUNCTION f() RETURNS int AS $body$\nBEGIN\n  RETURN 1;\nEND;\n$body$"
            " LANGUAGE plpgsql;",
            id="begin-end-in-a-function-body",
        ),
        pytest.param("-- COMMIT;\n/* BEGIN; */ SELECT 'COMMIT; END;';", id="comments-strings"),
        pytest.param("SELECT 1 AS commit;\nCREATE TABLE begin_end (c int);", id="words"),
        pytest.param(
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;",
            id="begin-atomic-left-to-the-server",
        ),
        pytest.param("-- cachestack:no-transaction\nCOMMIT;\nVACUUM;", id="no-transaction-file"),
    ],
)
def test_what_is_not_transaction_control_loads(tmp_path: Path, sql: str) -> None:
    (tmp_path / "V1__fine.sql").write_text(sql)
    (m,) = mp.load_migrations(str(tmp_path))
    assert m.sql == sql


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
    return [s.strip() for _offset, s in mp.split_statements(sql)]


def test_split_simple_and_offsets() -> None:
    sql = "SELECT 1;\nSELECT 2;\n  SELECT 3"
    parts = mp.split_statements(sql)
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
    parts = mp.split_statements(sql)
    assert parts == [
        (sql.index("DROP"), "DROP INDEX i;"),
        (sql.index("CREATE"), "CREATE INDEX i ON t (c);"),
    ]
    assert mp.line_of(sql, parts[1][0]) == 4


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
    parts = mp.split_statements(sql)
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


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(
            "SELECT $$ a; $x$ b; $$; SELECT $x$ c; $$ d; $x$;",
            ["SELECT $$ a; $x$ b; $$;", "SELECT $x$ c; $$ d; $x$;"],
            id="each-tag-ends-only-its-own-quote",
        ),
        pytest.param(
            "SELECT $_1$ a; $_1$, $é$ b; $é$; SELECT 2;",
            ["SELECT $_1$ a; $_1$, $é$ b; $é$;", "SELECT 2;"],
            id="tags-with-digits-underscore-non-ascii",
        ),
        pytest.param(
            "SELECT $1, $2 FROM t; SELECT 2;",
            ["SELECT $1, $2 FROM t;", "SELECT 2;"],
            id="parameters-are-not-dollar-quotes",
        ),
        pytest.param(
            "SELECT 'x'; SELECT ''; SELECT '''';",
            ["SELECT 'x';", "SELECT '';", "SELECT '''';"],
            id="empty-and-quote-only-strings",
        ),
        pytest.param(
            r"SELECT E'a\\'; SELECT E'it''s; \'; x'; SELECT 3;",
            [r"SELECT E'a\\';", r"SELECT E'it''s; \'; x';", "SELECT 3;"],
            id="escape-string-backslashes-and-doubled-quotes",
        ),
        pytest.param(
            r"SELECT (E'c\';d'), e'\\\\', 'x'; SELECT 2;",
            [r"SELECT (E'c\';d'), e'\\\\', 'x';", "SELECT 2;"],
            id="escape-string-after-a-parenthesis",
        ),
        pytest.param(
            r"SELECT date'C:\'; SELECT E'\\'; SELECT 3;",
            [r"SELECT date'C:\';", r"SELECT E'\\';", "SELECT 3;"],
            id="e-ending-a-word-is-no-escape-prefix",
        ),
        pytest.param(
            "SELECT E'a'\n'\\';b'; SELECT 2;",
            ["SELECT E'a'\n'\\';b';", "SELECT 2;"],
            id="escape-string-continued-after-a-newline",
        ),
        pytest.param(
            "SELECT E'a' -- comment; 'x\n  '\\';b'; SELECT 2;",
            ["SELECT E'a' -- comment; 'x\n  '\\';b';", "SELECT 2;"],
            id="escape-string-continued-after-a-comment-and-newline",
        ),
        pytest.param(
            "SELECT 'a'\n'b;''c'; SELECT 2;",
            ["SELECT 'a'\n'b;''c';", "SELECT 2;"],
            id="plain-string-continued",
        ),
        pytest.param(
            'SELECT 1 AS ";", 2 AS "a""; b"; SELECT "x;y".z FROM "x;y";',
            ['SELECT 1 AS ";", 2 AS "a""; b";', 'SELECT "x;y".z FROM "x;y";'],
            id="quoted-identifiers-holding-semicolons",
        ),
        pytest.param(
            "SELECT 1 /* a /* b /* c; */ d; */ e; */; SELECT 2;",
            ["SELECT 1 /* a /* b /* c; */ d; */ e; */;", "SELECT 2;"],
            id="block-comment-nested-three-deep",
        ),
        pytest.param(
            "SELECT 1 /*/ ; */ ; SELECT 2 /**/; SELECT 3",
            ["SELECT 1 /*/ ; */ ;", "SELECT 2 /**/;", "SELECT 3"],
            id="block-comment-edge-delimiters",
        ),
        pytest.param(
            "SELECT '/*', '--'; SELECT $$/*$$; SELECT \"--\"; SELECT 4;",
            ["SELECT '/*', '--';", "SELECT $$/*$$;", 'SELECT "--";', "SELECT 4;"],
            id="comment-starts-inside-quotes",
        ),
        pytest.param(
            "SELECT 1; -- ';\nSELECT 2; /* $$ */ SELECT 3;",
            ["SELECT 1;", "SELECT 2;", "SELECT 3;"],
            id="quote-starts-inside-comments",
        ),
        pytest.param(
            "SELECT 1;\n;\n  ;  -- nothing; here\n/* nor; here */\n",
            ["SELECT 1;"],
            id="empty-trailing-statements",
        ),
        pytest.param("SELECT 1;", ["SELECT 1;"], id="one-statement"),
        pytest.param("", [], id="empty-file"),
        pytest.param(
            "SELECT $$ never closed; SELECT 2;",
            ["SELECT $$ never closed; SELECT 2;"],
            id="unterminated-dollar-quote-runs-to-the-end",
        ),
    ],
)
def test_split_more(sql: str, expected: list[str]) -> None:
    assert split_checked(sql) == expected


def test_split_do_block_with_nested_tags_and_plpgsql_function() -> None:
    sql = (
        "DO $do$\n"
        "DECLARE q text := $q$SELECT 1; -- not a comment$q$;\n"
        "BEGIN\n"
        "  EXECUTE q;\n"
        "  EXECUTE $$SELECT ';'$$;\n"
        "END\n"
        "$do$;\n"
        "CREATE OR REPLACE FUNCTION bump(n int) RETURNS int AS $body$\n"
        "BEGIN\n"
        "  -- a comment; with a semicolon\n"
        "  IF n > 0 THEN RETURN n + 1; END IF;\n"
        "  RETURN $$neg;$$ || n;\n"
        "END;\n"
        "$body$ LANGUAGE plpgsql;\n"
        "SELECT bump(1);\n"
    )
    parts = mp.split_statements(sql)
    assert [mp.line_of(sql, offset) for offset, _text in parts] == [1, 8, 15]
    assert [text.split("\n")[0] for _offset, text in parts] == [
        "DO $do$",
        "CREATE OR REPLACE FUNCTION bump(n int) RETURNS int AS $body$",
        "SELECT bump(1);",
    ]
    assert parts[1][1].endswith("$body$ LANGUAGE plpgsql;")


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
    parts = mp.split_statements(sql)
    assert [mp.line_of(sql, offset) for offset, _text in parts] == [2, 4, 5, 10, 11]
    assert split_checked(sql) == [
        'CREATE TABLE "t;1" (v text);',
        "INSERT INTO \"t;1\" VALUES ('a;''b'), (E'c\\';d'), ($$e;f$$), ($q$g;$$;h$q$);",
        "DO $do$\nBEGIN\n  EXECUTE $x$SELECT 1;$x$;\nEND\n$do$;",
        "CREATE FUNCTION g() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;",
        "SELECT g()",
    ]


def test_line_of() -> None:
    text = "a\nbb\nccc"
    assert mp.line_of(text, 0) == 1
    assert mp.line_of(text, 2) == 2
    assert mp.line_of(text, text.index("ccc") + 1) == 3


# -- plans ------------------------------------------------------------------------------------


def test_plan_empty_history_everything_pending() -> None:
    files = [mig("1"), mig("2"), mig("10")]
    plan = mp.build_plan(files, [])
    assert [m.version for m in plan.pending] == ["1", "2", "10"]
    assert plan.baseline is None
    assert plan.warnings == []


def test_plan_only_new_files_pending() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    plan = mp.build_plan(files, [row(files[0]), row(files[1])])
    assert [m.version for m in plan.pending] == ["3"]
    assert [mp.version_str(k) for k in plan.recorded] == ["1", "2"]


def test_plan_nothing_pending() -> None:
    files = [mig("1"), mig("2")]
    assert mp.build_plan(files, [row(f) for f in files]).pending == []


def test_plan_checksum_mismatch_fails_naming_version() -> None:
    files = [mig("1"), mig("2", "SELECT 'edited';"), mig("3")]
    history = [row(files[0]), row(files[1], checksum="0" * 64)]
    with pytest.raises(
        mp.MigrationError, match=r"checksum mismatch for version 2 \(V2__step.sql\)"
    ):
        mp.build_plan(files, history)


def test_plan_checksum_mismatch_warn_continues() -> None:
    files = [mig("1"), mig("2", "SELECT 'edited';"), mig("3")]
    history = [row(files[0]), row(files[1], checksum="0" * 64)]
    plan = mp.build_plan(files, history, on_checksum_mismatch="warn")
    assert [m.version for m in plan.pending] == ["3"]
    assert len(plan.warnings) == 1
    assert "version 2" in plan.warnings[0]


def test_plan_recorded_file_missing_warns() -> None:
    files = [mig("1"), mig("3")]
    gone = mig("2")
    plan = mp.build_plan(files, [row(files[0]), row(gone), row(files[1])])
    assert plan.pending == []
    assert plan.warnings == [
        "version 2 (V2__step.sql) is recorded in the history table but its file is missing "
        "from the directory"
    ]


def test_plan_target_version_stops_early() -> None:
    files = [mig("1"), mig("2"), mig("2.5"), mig("3")]
    plan = mp.build_plan(files, [], target_version="2.5")
    assert [m.version for m in plan.pending] == ["1", "2", "2.5"]
    assert mp.build_plan(files, [row(f) for f in files[:3]], target_version=2).pending == []


def test_plan_baseline_on_empty_history() -> None:
    files = [mig("1"), mig("2"), mig("3"), mig("4")]
    plan = mp.build_plan(files, [], baseline_version=2)
    assert plan.baseline == (2,)
    assert [m.version for m in plan.pending] == ["3", "4"]


def test_plan_baseline_ignored_once_history_has_rows() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    plan = mp.build_plan(files, [row(files[0])], baseline_version=2)
    assert plan.baseline is None
    assert [m.version for m in plan.pending] == ["2", "3"]


def test_plan_recorded_baseline_covers_older_files() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    base = {"version": "2", "type": "BASELINE", "script": None, "checksum": None}
    plan = mp.build_plan(files, [base])
    assert [m.version for m in plan.pending] == ["3"]
    assert plan.warnings == []  # neither checksum nor missing-file checks for a baseline


def test_plan_late_old_file_is_an_error_unless_out_of_order() -> None:
    files = [mig("1"), mig("1.5"), mig("2")]
    history = [row(files[0]), row(files[2])]
    with pytest.raises(mp.MigrationError, match=r"V1\.5__step\.sql.*out_of_order"):
        mp.build_plan(files, history)
    plan = mp.build_plan(files, history, out_of_order=True)
    assert [m.version for m in plan.pending] == ["1.5"]


def test_plan_versions_match_across_spellings() -> None:
    files = [mig("1.0", script="V1.0__step.sql")]
    assert mp.build_plan(files, [{**row(files[0]), "version": "1"}]).pending == []


def test_plan_baseline_and_target_together() -> None:
    files = [mig("1"), mig("2"), mig("3"), mig("4")]
    plan = mp.build_plan(files, [], baseline_version="2", target_version="3")
    assert plan.baseline == (2,)
    assert [m.version for m in plan.pending] == ["3"]


def test_plan_target_below_what_is_recorded_is_nothing_to_do() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    plan = mp.build_plan(files, [row(f) for f in files], target_version=1)
    assert plan.pending == []
    assert plan.warnings == []
    assert plan.recorded == [(1,), (2,), (3,)]


def test_plan_checksum_is_checked_beyond_the_target() -> None:
    files = [mig("1"), mig("2")]
    with pytest.raises(mp.MigrationError, match="checksum mismatch for version 2"):
        mp.build_plan(files, [row(files[0]), row(files[1], "0" * 64)], target_version=1)


def test_plan_checksum_mismatch_fail_message_and_one_warning_per_file() -> None:
    files = [mig("1"), mig("2"), mig("3")]
    history = [row(files[0], "a" * 64), row(files[1], "b" * 64), row(files[2])]
    with pytest.raises(mp.MigrationError) as exc:
        mp.build_plan(files, history)
    assert str(exc.value) == (
        f"checksum mismatch for version 1 (V1__step.sql): recorded sha256 {'a' * 64}, the file"
        f" now has {files[0].checksum}; an applied file must not change, add a new version"
        " instead (or set on_checksum_mismatch: warn)"
    )
    plan = mp.build_plan(files, history, on_checksum_mismatch="warn")
    assert [w.split(" (")[0] for w in plan.warnings] == [
        "checksum mismatch for version 1",
        "checksum mismatch for version 2",
    ]
    assert plan.pending == []


def test_plan_recorded_lists_history_rows_in_version_order() -> None:
    files = [mig("2"), mig("10")]
    base = {"version": "1", "type": "BASELINE", "script": None, "checksum": None}
    plan = mp.build_plan(files, [row(files[1]), base, row(files[0])])
    assert plan.recorded == [(1,), (2,), (10,)]


def test_plan_missing_files_warn_in_version_order() -> None:
    gone = [mig("10"), mig("2")]
    plan = mp.build_plan([], [row(g) for g in gone])
    assert [w.split(" (")[0] for w in plan.warnings] == ["version 2", "version 10"]


def test_plan_late_files_are_all_named() -> None:
    files = [mig("1"), mig("1.5"), mig("1.7"), mig("2"), mig("3")]
    history = [row(files[0]), row(files[3])]
    with pytest.raises(mp.MigrationError) as exc:
        mp.build_plan(files, history)
    assert str(exc.value) == (
        "files are older than the current version 2 and never applied: V1.5__step.sql,"
        " V1.7__step.sql; renumber above 2 or set out_of_order: true"
    )
    plan = mp.build_plan(files, history, out_of_order=True)
    assert [m.version for m in plan.pending] == ["1.5", "1.7", "3"]


def test_plan_late_file_above_a_recorded_baseline() -> None:
    """A baseline row covers the files up to it; one between it and the highest row is late."""
    files = [mig("1"), mig("2"), mig("3"), mig("4")]
    base = {"version": "1", "type": "BASELINE", "script": None, "checksum": None}
    with pytest.raises(mp.MigrationError, match=r"file is older .*: V2__step\.sql;"):
        mp.build_plan(files, [base, row(files[2])])
    plan = mp.build_plan(files, [base, row(files[2])], out_of_order=True)
    assert [m.version for m in plan.pending] == ["2", "4"]


@pytest.mark.parametrize("value", ["1.x", "abc", True])
def test_plan_rejects_a_bad_target_or_baseline(value: object) -> None:
    with pytest.raises(mp.MigrationError, match="invalid version"):
        mp.build_plan([mig("1")], [], target_version=value)
    with pytest.raises(mp.MigrationError, match="invalid version"):
        mp.build_plan([mig("1")], [], baseline_version=value)


@pytest.mark.parametrize("empty", [None, ""])
def test_plan_empty_target_and_baseline_mean_none(empty: object) -> None:
    plan = mp.build_plan([mig("1"), mig("2")], [], target_version=empty, baseline_version=empty)
    assert [m.version for m in plan.pending] == ["1", "2"]
    assert plan.baseline is None


# -- locks -------------------------------------------------------------------------------------


def test_lock_key_is_stable_signed_64_bit_and_per_table() -> None:
    key = mp.lock_key("public", "cachestack_schema_history")
    assert key == mp.lock_key("public", "cachestack_schema_history")
    assert -(2**63) <= key < 2**63
    assert key != mp.lock_key("app", "cachestack_schema_history")
    assert key != mp.lock_key("public", "other_history")
