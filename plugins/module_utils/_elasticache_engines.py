# Copyright: cachestack.aws contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ElastiCache engine versions exist, their parameter group families and default groups.

Written from AWS's API reference (botocore's ElastiCache service model) and the ElastiCache
user guide, not from what an emulator accepts:

* Redis OSS ends at 7.1 (families ``redis4.0``, ``redis5.0``, ``redis6.x``, ``redis7``);
  Valkey starts at 7.2 (``valkey7``), then 8.0 to 8.2 (``valkey8``) and 9.0 (``valkey9``).
  "Valkey 8.0 and above parameter groups are incompatible with Redis OSS 7.2.4".
* AWS's default parameter group of a family is ``default.<family>``, and the one with
  ``cluster-enabled yes`` (needed by cluster mode) ``default.<family>.cluster.on``.
* Redis OSS to Valkey is an in-place upgrade (ModifyReplicationGroup with Engine,
  EngineVersion and the new family's CacheParameterGroupName, same endpoint). Valkey cannot
  go back to Redis OSS, and ModifyReplicationGroup's reference: "you cannot downgrade to an
  earlier engine version".

Nothing here talks to AWS. Private to this collection: no compatibility promise.
"""

from __future__ import annotations

import re
from typing import Any

# engine -> (allowed versions, what the error message calls them, family of a version).
# A version is major.minor (AWS picks the newest patch) or a full version; "6.x" is Redis
# OSS 6's own spelling.
_VERSIONS = {
    "redis": re.compile(r"^(4\.0(\.10)?|5\.0(\.[0-6])?|6\.(x|0|2)(\.\d+)?|7\.[01](\.\d+)?|7)$"),
    "valkey": re.compile(r"^(7\.2(\.\d+)?|8\.\d+(\.\d+)?|9\.\d+(\.\d+)?|[89])$"),
}
_VERSIONS_SAID = {
    "redis": "4.0.10, 5.0, 6.x (6.0, 6.2), 7.0 and 7.1 (Redis OSS ends at 7.1)",
    "valkey": "7.2, 8.0, 8.1, 8.2 and 9.0",
}
ENGINES = tuple(_VERSIONS)

# Every family this table knows, by engine (the ones a default group name can name).
FAMILIES = {
    "redis": ("redis2.6", "redis2.8", "redis3.2", "redis4.0", "redis5.0", "redis6.x", "redis7"),
    "valkey": ("valkey7", "valkey8", "valkey9"),
}
_DEFAULT_GROUP = re.compile(
    r"^default\.(?P<family>[a-z]+[0-9][0-9.x]*?)(?P<cluster>\.cluster\.on)?$"
)


def version_known(engine: str, version: str) -> bool:
    """Whether ``version`` is one of ``engine``'s versions."""
    pattern = _VERSIONS.get(engine)
    return bool(pattern and pattern.match(version.strip().lower()))


def family(engine: str, version: str) -> str | None:
    """The parameter group family of ``engine`` ``version`` (None when it is not one of its)."""
    version = version.strip().lower()
    if not version_known(engine, version):
        return None
    major = version.partition(".")[0]
    if engine == "valkey":
        return f"valkey{major}"
    if major in ("4", "5"):
        return f"redis{major}.0"
    if major == "6":
        return "redis6.x"
    return "redis7"


def default_group(engine: str, version: str, cluster_mode: str | None) -> str | None:
    """AWS's default parameter group for the engine, version and cluster mode (or None).

    Cluster mode ``enabled`` needs ``cluster-enabled yes``: ``default.<family>.cluster.on``;
    ``disabled``, ``compatible`` and not set: ``default.<family>``.
    """
    name = family(engine, version)
    if name is None:
        return None
    return f"default.{name}.cluster.on" if cluster_mode == "enabled" else f"default.{name}"


def parse_default_group(name: str | None) -> tuple[str, bool] | None:
    """(family, cluster.on) of an AWS default group name; None for any other name."""
    match = _DEFAULT_GROUP.match((name or "").strip().lower())
    if not match:
        return None
    return match.group("family"), bool(match.group("cluster"))


def engine_of_family(name: str) -> str | None:
    for engine, families in FAMILIES.items():
        if name in families:
            return engine
    return None


def _numbers(version: str | None) -> tuple[int, ...] | None:
    """(major, minor[, patch]) of a version, None when a part is not a number ("6.x")."""
    if not version:
        return None
    parts = version.strip().lower().split(".")
    if not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def is_downgrade(wanted: str | None, running: str | None) -> bool:
    """Whether asking for ``wanted`` on a group running ``running`` is a downgrade.

    Compared on the parts ``wanted`` gives ("7.1" against "7.1.0" is the same version, and
    "7" against "7.1.0" too); a part that is not a number ("6.x") is never a downgrade.
    """
    asked, have = _numbers(wanted), _numbers(running)
    if asked is None or have is None:
        return False
    return asked < have[: len(asked)]


def engine_problems(params: dict[str, Any], current: dict[str, Any] | None) -> list[str]:
    """Why the engine, engine_version, cache_parameter_group_name and cluster_mode asked for
    do not fit together (or with the running group); empty when they do.

    ``params`` are the module's options after ``resolve_parameter_group``; ``current`` the
    running group's state (``_elasticache.current_state``), None when creating.
    """
    current = current or {}
    errors: list[str] = []
    running_engine = (current.get("engine") or "").lower() or None
    engine = params.get("engine") or running_engine or ("redis" if not current else None)
    version = params.get("engine_version")
    group = params.get("cache_parameter_group_name")
    cluster_mode = params.get("cluster_mode") or current.get("cluster_mode")

    # Changes AWS cannot make to a running group.
    if running_engine == "valkey" and params.get("engine") == "redis":
        errors.append(
            "engine=redis asked, but the group runs Valkey: AWS upgrades Redis OSS to Valkey"
            " in place but cannot change Valkey back to Redis OSS. Keep engine=valkey, or"
            " create a new Redis OSS group (another replication_group_id) and move the data"
        )
        return errors
    running_version = current.get("engine_version")
    if version and running_version and is_downgrade(version, running_version):
        errors.append(
            f"engine_version={version} is older than the {running_version} the group runs,"
            " and ElastiCache never downgrades an engine: set engine_version to"
            f" {running_version} or later (or leave it unset), or create a new group with"
            " the older version"
        )
    if (
        params.get("engine")
        and running_engine
        and params["engine"] != running_engine
        and not version
    ):
        errors.append(
            f"changing engine from {running_engine} to {params['engine']} needs"
            " engine_version in the same request: set engine_version (for example 8.2)"
        )

    # The engine and its version.
    if engine and version and not version_known(engine, version):
        hint = ""
        if engine == "redis" and (_numbers(version) or (0,)) >= (7, 2):
            hint = f": Valkey {version} is engine=valkey, or keep engine=redis with 7.1"
        errors.append(
            f"engine_version={version} is not a version of engine={engine}; {engine} has"
            f" {_VERSIONS_SAID[engine]}{hint}"
        )
        return errors

    # The parameter group: only AWS's default groups can be checked without a call.
    parsed = parse_default_group(group)
    if parsed is None:
        return errors
    group_family, cluster_on = parsed
    wanted_family = family(engine, version) if engine and version else None
    fix_group = default_group(engine, version, cluster_mode) if engine and version else None
    fix = (
        f"use {fix_group}, or leave cache_parameter_group_name unset for that default"
        if fix_group
        else "use a default.<family> group of that engine, or leave it unset"
    )
    if wanted_family and group_family != wanted_family:
        errors.append(
            f"cache_parameter_group_name={group} is a {group_family} group, but engine={engine}"
            f" engine_version={version} needs family {wanted_family}: {fix}"
        )
    elif engine and engine_of_family(group_family) not in (None, engine):
        errors.append(
            f"cache_parameter_group_name={group} is a {group_family} group, which engine="
            f"{engine} cannot use: {fix}"
        )
    if cluster_mode == "enabled" and not cluster_on:
        errors.append(
            f"cluster_mode=enabled needs a parameter group with cluster-enabled yes, and"
            f" {group} has it off: use default.{group_family}.cluster.on"
        )
    return errors


def resolve_parameter_group(
    params: dict[str, Any], current: dict[str, Any] | None
) -> tuple[str | None, list[str]]:
    """The cache parameter group to ask for, and why there is none when one is needed.

    Given: used as is. Not given:

    * creating: AWS's default group of the engine (redis when not set), engine_version and
      cluster mode; none (AWS chooses) when engine_version is not set;
    * an existing group: unchanged, unless the engine or version asked for moves it to
      another family. Then a ``default.*`` group is swapped for the new family's default
      (in the same ModifyReplicationGroup call); a group of the user's own cannot be, and
      is an error that asks for one of the new family.
    """
    given = params.get("cache_parameter_group_name")
    if given:
        return given, []
    version = params.get("engine_version")
    cluster_mode = params.get("cluster_mode")
    if current is None:
        if not version:
            return None, []
        return default_group(params.get("engine") or "redis", version, cluster_mode), []
    engine = params.get("engine") or current.get("engine")
    running = current.get("engine_version")
    running_engine = current.get("engine")
    if not (engine and version and running and running_engine):
        return None, []
    new_family = family(engine, version)
    old_family = family(running_engine, running)
    if new_family is None or new_family == old_family:
        return None, []
    running_group = current.get("cache_parameter_group_name")
    if running_group and parse_default_group(running_group) is None:
        return None, [
            f"the group uses its own parameter group {running_group}, for"
            f" {running_engine} {running}; {engine} {version} needs a {new_family} group:"
            f" set cache_parameter_group_name to one of family {new_family} (for example"
            f" {default_group(engine, version, cluster_mode or current.get('cluster_mode'))})"
        ]
    return default_group(engine, version, cluster_mode or current.get("cluster_mode")), []
