"""roles/web_app/files/check_config.py as the role runs it on a web host: a separate
Python (-I) on the file. As the template's validator it refuses what the app would refuse
in one line that never holds a secret; with --postgresql it prints the [postgresql]
settings the app would use, password_file read, as JSON (the plan's migrations log in
with them, tasks/migrate.yml)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[3] / "roles" / "web_app" / "files"
CHECK = FILES / "check_config.py"
DB_SECRET = "db-Secret-4e1f"
CACHE_SECRET = "cache-Token-9a2c"


def check(*args: str | Path):
    command = [sys.executable, "-I", str(CHECK), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """app.ini as the role writes it: the secrets in files of their own beside it."""
    (tmp_path / "db-password").write_text(DB_SECRET + "\n")
    (tmp_path / "cache-auth-token").write_text(CACHE_SECRET + "\n")
    (tmp_path / "app.ini").write_text(
        "[postgresql]\nhost = db.internal\nport = 6432\ndbname = shop\nuser = shop_app\n"
        f"password_file = {tmp_path / 'db-password'}\nsslmode = require\n"
        "connect_timeout = 4\nstatement_timeout = 7.5\n"
        f"[redis]\nhost = cache.internal\npassword_file = {tmp_path / 'cache-auth-token'}\n"
    )
    return tmp_path


def test_a_valid_file_passes_silently(config_dir: Path) -> None:
    result = check(config_dir / "app.ini")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_postgresql_mode_prints_the_settings_the_app_uses(config_dir: Path) -> None:
    result = check("--postgresql", config_dir / "app.ini")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "host": "db.internal",
        "port": 6432,
        "dbname": "shop",
        "user": "shop_app",
        "password": DB_SECRET,
        "sslmode": "require",
        "sslrootcert": None,
        "connect_timeout": 4,
        "statement_timeout": 7.5,
    }
    assert CACHE_SECRET not in result.stdout  # [postgresql] only


def test_postgresql_mode_reads_an_inline_password_and_the_defaults(tmp_path: Path) -> None:
    ini = tmp_path / "app.ini"
    ini.write_text("[postgresql]\nhost = d\npassword = inline\n[redis]\nhost = c\n")
    shown = json.loads(check("--postgresql", ini).stdout)
    assert shown["password"] == "inline"
    assert (shown["port"], shown["dbname"], shown["user"], shown["sslmode"]) == (
        5432,
        "cachestack",
        "cachestack",
        "prefer",
    )


def test_a_refused_file_is_one_line_naming_the_key_without_the_secret(config_dir: Path) -> None:
    ini = config_dir / "app.ini"
    ini.write_text(ini.read_text().replace("[redis]\n", f"password = {DB_SECRET}\n[redis]\n"))
    for args in ((ini,), ("--postgresql", ini)):
        result = check(*args)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == (
            f"invalid app configuration: {ini}: [postgresql] password_file:"
            " cannot be set with password\n"
        )


def test_an_empty_secret_file_is_refused(config_dir: Path) -> None:
    (config_dir / "cache-auth-token").write_text("\n")
    result = check(config_dir / "app.ini")
    assert result.returncode == 1
    assert "[redis] password_file: file" in result.stderr and "is empty" in result.stderr


# The check run by a user outside the file's group (tests run as root, who reads anything):
# this Python imports the check, then drops to nobody and runs it.
AS_NOBODY = f"""
import os, pwd, sys
sys.path.insert(0, {str(FILES)!r})
import check_config
nobody = pwd.getpwnam("nobody")
os.setgroups([])
os.setgid(nobody.pw_gid)
os.setuid(nobody.pw_uid)
sys.exit(check_config.main(sys.argv))
"""


def test_a_secret_file_the_reader_may_not_read_is_refused() -> None:
    # As on the host: the folder open to the app, the file root's and its group's only.
    folder = Path(tempfile.mkdtemp(prefix="check-config-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        secret = folder / "db-password"
        secret.write_text(DB_SECRET + "\n")
        secret.chmod(0o640)
        ini = folder / "app.ini"
        ini.write_text(f"[postgresql]\nhost = d\npassword_file = {secret}\n[redis]\nhost = c\n")
        ini.chmod(0o644)
        command = [sys.executable, "-c", AS_NOBODY, "--postgresql", str(ini)]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert refused.stdout == ""
        assert refused.stderr == (
            f"invalid app configuration: {ini}: [postgresql] password_file:"
            f" file {secret} is not readable (permission denied)\n"
        )
        secret.chmod(0o644)  # the control: the same user reads it once it may
        allowed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert allowed.returncode == 0, allowed.stderr
        assert json.loads(allowed.stdout)["password"] == DB_SECRET
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize("args", [(), ("--postgresql",), ("--redis", "x"), ("a", "b")])
def test_usage(args: tuple[str, ...]) -> None:
    result = check(*args)
    assert result.returncode == 2
    assert result.stderr == "usage: check_config.py [--postgresql] FILE\n"
