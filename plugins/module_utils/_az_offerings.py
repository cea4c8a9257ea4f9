# Copyright: cachestack.aws contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic for the aws_az_offerings_info module: which availability zones offer every
resource the stack places in them.

Nothing here talks to AWS. The module reads DescribeAvailabilityZones,
DescribeInstanceTypeOfferings and DescribeOrderableDBInstanceOptions; these functions turn
the answers into zone sets, intersect them and explain a shortfall.

Private to this collection: the leading underscore means no compatibility promise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def ec2_zones(offerings: Iterable[Mapping[str, Any]]) -> set[str]:
    """Zones of DescribeInstanceTypeOfferings answers (LocationType availability-zone)."""
    return {offering["Location"] for offering in offerings}


def engine_version_matches(wanted: str, offered: str) -> bool:
    """True when ``offered`` (``16.4``) is ``wanted`` or one of its versions (``16``)."""
    if not wanted:
        return True
    return offered == wanted or offered.startswith(f"{wanted}.")


def rds_zones(options: Iterable[Mapping[str, Any]], engine_version: str = "") -> set[str]:
    """Zones of DescribeOrderableDBInstanceOptions answers, for in-VPC options of the
    engine version (a major version such as ``16`` matches every ``16.x``)."""
    zones: set[str] = set()
    for option in options:
        if not option.get("Vpc", True):
            continue
        if not engine_version_matches(engine_version, str(option.get("EngineVersion", ""))):
            continue
        zones.update(zone["Name"] for zone in option.get("AvailabilityZones", []))
    return zones


def common_zones(available: Iterable[str], offered: Mapping[str, set[str]]) -> list[str]:
    """The available zones that offer every resource, sorted by name."""
    zones = set(available)
    for resource_zones in offered.values():
        zones &= resource_zones
    return sorted(zones)


def shortfall(available: Iterable[str], offered: Mapping[str, set[str]], needed: int) -> str | None:
    """None when at least ``needed`` zones offer everything; else a sentence that names
    what each resource is offered in, so the user can tell which setting to change."""
    zones = common_zones(available, offered)
    if len(zones) >= needed:
        return None
    available_set = set(available)
    parts = [
        f"{resource} in {sorted(resource_zones & available_set) or 'none'}"
        for resource, resource_zones in offered.items()
    ]
    return (
        f"{len(zones)} availability zone(s) offer everything ({zones or 'none'}), "
        f"{needed} needed: " + "; ".join(parts)
    )
