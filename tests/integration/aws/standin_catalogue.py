"""What AWS sells where, for ``moto_compat.py``: the RDS PostgreSQL instance options.

moto 5.2 answers DescribeOrderableDBInstanceOptions only for Aurora PostgreSQL and Neptune
(an empty list for ``postgres``) and ignores its DBInstanceClass and Vpc filters. AWS
lists, for each engine version and instance class, the availability zones that offer it,
and applies every filter. ``install()`` makes moto answer the same way for the PostgreSQL
versions and classes below, offered in a VPC in every availability zone of the region
(EC2's instance type offerings already come from moto's own per-zone data, where, for
example, us-east-1e offers no t3.micro).
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.rds.responses import RDSResponse

POSTGRES_VERSIONS = ("15.10", "16.4", "16.6", "17.2", "17.4")
POSTGRES_CLASSES = ("db.t3.micro", "db.t3.small", "db.t4g.micro", "db.t4g.small", "db.m7g.large")


def _zones(account_id: str, region: str) -> list[str]:
    backend = ec2_backends[account_id][region]
    return sorted(zone.name for zone in backend.describe_availability_zones())


def postgres_options(account_id: str, region: str) -> list[dict[str, Any]]:
    zones = [{"Name": name} for name in _zones(account_id, region)]
    return [
        {
            "Engine": "postgres",
            "EngineVersion": version,
            "DBInstanceClass": db_class,
            "LicenseModel": "postgresql-license",
            "AvailabilityZones": zones,
            "MultiAZCapable": True,
            "Vpc": True,
            "StorageType": "gp3",
            "SupportsStorageEncryption": True,
        }
        for version in POSTGRES_VERSIONS
        for db_class in POSTGRES_CLASSES
    ]


_original = RDSResponse.describe_orderable_db_instance_options


def _describe_orderable_db_instance_options(self: RDSResponse) -> Any:
    if self.params.get("Engine") != "postgres":
        return _original(self)
    wanted = {
        "EngineVersion": self.params.get("EngineVersion"),
        "DBInstanceClass": self.params.get("DBInstanceClass"),
        "Vpc": self.params.get("Vpc"),
    }
    options = [
        option
        for option in postgres_options(self.current_account, self.region)
        if all(value in (None, option[key]) for key, value in wanted.items())
    ]
    return ActionResult({"OrderableDBInstanceOptions": options})


def install() -> None:
    RDSResponse.describe_orderable_db_instance_options = _describe_orderable_db_instance_options  # type: ignore[method-assign]
