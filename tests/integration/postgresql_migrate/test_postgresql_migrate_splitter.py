"""The statement splitter of no-transaction files, checked against the real server."""

from __future__ import annotations

from .conftest import Migrate


def apply_alone(migrate: Migrate, name: str, statements: str) -> None:
    """Write one no-transaction file of these statements and apply it: it must succeed."""
    migrate.write(name, "-- cachestack:no-transaction\n" + statements)
    run = migrate.run_module()
    assert run.rc == 0, run.msg
    assert run.applied == ["1"]


def test_a_no_transaction_file_splits_as_the_server_reads_it(migrate: Migrate) -> None:
    """The splitter's hard cases, run statement by statement against the real server.

    A wrong split sends the server half a statement: a syntax error, or (for the rule) a
    rule with one action and a stray INSERT that fails.
    """
    apply_alone(
        migrate,
        "V1__tricky.sql",
        'CREATE TABLE "t;1" (v text); -- a; comment\n'
        "CREATE TABLE log (v text);\n"
        "/* a; /* nested; */ comment; */\n"
        "INSERT INTO \"t;1\" VALUES ('a;''b'), (E'c\\';d'), ($$e;f$$), ($q$g;$$;h$q$);\n"
        'CREATE RULE twice AS ON INSERT TO "t;1" DO ALSO'
        " (INSERT INTO log VALUES (NEW.v || ';1'); INSERT INTO log VALUES (NEW.v || ';2'));\n"
        "DO $do$\nBEGIN\n  EXECUTE $x$INSERT INTO log VALUES ('do;')$x$;\nEND\n$do$;\n"
        "CREATE FUNCTION g() RETURNS text AS $body$ BEGIN RETURN 'g;'; END; $body$"
        " LANGUAGE plpgsql;\n"
        'INSERT INTO "t;1" SELECT g()\n',
    )
    assert migrate.query('SELECT v FROM "t;1" ORDER BY v') == [
        ("a;'b",),
        ("c';d",),
        ("e;f",),
        ("g;",),
        ("g;$$;h",),
    ]
    assert migrate.query("SELECT v FROM log ORDER BY v") == [("do;",), ("g;;1",), ("g;;2",)]


def test_a_continued_escape_string_stays_one_statement(migrate: Migrate) -> None:
    """A string literal continued after a newline keeps its kind: E'a'<newline>'\\';b' is
    the one value a';b to the server, so the ; in it does not end the statement (the
    splitter used to read the continuation as a plain string that ends at \\' and split
    there). A -- comment may sit between the two parts, before the newline. No parentheses
    around the values: a ; inside them would not split in any case.
    """
    apply_alone(
        migrate,
        "V1__continued.sql",
        "CREATE TABLE t (v text);\n"
        "INSERT INTO t SELECT E'a'\n'\\';b';\n"
        "INSERT INTO t SELECT E'c' -- a comment; with a semicolon\n  '\\';d';\n"
        "INSERT INTO t SELECT 'e'\n'f;''g';\n",
    )
    assert migrate.query("SELECT v FROM t ORDER BY v") == [("a';b",), ("c';d",), ("ef;'g",)]
