"""A file's SET ROLE / SET SESSION AUTHORIZATION / SET must not outlive the file.

The module runs every file over one connection. Without a reset after each file, a file
that switches role leaves the next file (its objects' owner), the history inserts and the
rest of the run to that role. The database's user here is the session server's superuser
(SET SESSION AUTHORIZATION needs one); the role the file switches to is a plain NOLOGIN
role that V1 grants what it needs, so that without the reset the run would go through and
only ownership and applied_by would tell.
"""

from __future__ import annotations

import pytest

from .conftest import Migrate

# V1 prepares the role, then switches to it and moves search_path away from public.
V1 = """GRANT USAGE, CREATE ON SCHEMA public TO {role};
CREATE SCHEMA elsewhere;
GRANT USAGE, CREATE ON SCHEMA elsewhere TO {role};
GRANT SELECT, INSERT ON cachestack_schema_history TO {role};
{switch} {role};
SET search_path TO elsewhere;
"""
V2 = "CREATE TABLE made_by_v2 (id int);\n"
# What the session looks like to the next file, the last one of the run.
V3 = """CREATE TABLE whoami AS
SELECT current_user::text AS cu, session_user::text AS su,
       current_setting('search_path') AS search_path;
"""


@pytest.mark.parametrize(
    ("switch", "marker"),
    [
        ("SET ROLE", ""),
        ("SET SESSION AUTHORIZATION", ""),
        ("SET ROLE", "-- cachestack:no-transaction\n"),
    ],
    ids=["set-role", "set-session-authorization", "set-role-no-transaction"],
)
def test_a_role_switch_does_not_leak_into_the_next_file(
    migrate: Migrate, switch: str, marker: str
) -> None:
    me = migrate.db.user
    role = f"{migrate.db.name}_other"
    migrate.query(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        migrate.write("V1__switch_role.sql", marker + V1.format(switch=switch, role=f'"{role}"'))
        migrate.write("V2__create_table.sql", V2)
        migrate.write("V3__whoami.sql", V3)

        run = migrate.run_module()
        assert run.rc == 0, run.msg
        assert run.applied == ["1", "2", "3"]

        # V2's table is where and whose the connection's defaults say, not V1's.
        assert migrate.exists("public.made_by_v2")
        assert not migrate.exists("elsewhere.made_by_v2")
        owner = migrate.query(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename = 'made_by_v2'"
        )
        assert owner == [(me,)]
        # Every history row, V1's included, was written by the migrating user.
        assert migrate.query(
            "SELECT version, applied_by FROM cachestack_schema_history ORDER BY applied_at"
        ) == [("1", me), ("2", me), ("3", me)]
        # The last file still ran as the migrating user, with the default search_path.
        assert migrate.query("SELECT cu, su, search_path FROM whoami") == [
            (me, me, '"$user", public')
        ]
    finally:
        migrate.query(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
