"""What AWS sells where, for ``moto_compat.py``: the RDS PostgreSQL instance options, and
the official Debian and Ubuntu images.

moto 5.2 answers DescribeOrderableDBInstanceOptions only for Aurora PostgreSQL and Neptune
(an empty list for ``postgres``) and ignores its DBInstanceClass and Vpc filters. AWS
lists, for each engine version and instance class, the availability zones that offer it,
and applies every filter. ``install()`` makes moto answer the same way for the PostgreSQL
versions and classes below, offered in a VPC in every availability zone of the region
(EC2's instance type offerings already come from moto's own per-zone data, where, for
example, us-east-1e offers no t3.micro).

moto's own images predate Debian 13 and Ubuntu 24.04. ``install()`` registers ``IMAGES``
in every region's EC2 backend as it is made (also after ``POST /moto-api/reset``), under
the accounts that publish them: Debian's ``136693071363`` (names ``debian-13-amd64-*``,
``debian-13-arm64-*``, ``debian-13-backports-amd64-*``, ``debian-12-amd64-*``; root device
``/dev/xvda``; login user ``admin``) and Canonical's ``099720109477``
(``ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*``; ``/dev/sda1``; user
``ubuntu``). Several Debian 13 amd64 dates are there, and, newer than any of them, images a
careless search would pick instead: arm64, backports, Debian 12, Ubuntu, and one still
``pending``. ``NEWEST_DEBIAN_13_AMD64`` is the one the web instance must get.
"""

from __future__ import annotations

import datetime
from typing import Any, NamedTuple

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami, AmiBackend
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


DEBIAN = "136693071363"
CANONICAL = "099720109477"


class Image(NamedTuple):
    image_id: str
    owner: str
    name: str
    architecture: str
    created: str  # ISO 8601, UTC
    root_device: str
    state: str = "available"


IMAGES = (
    Image("ami-0deb13a0000000001", DEBIAN, "debian-13-amd64-20250814-2204", "x86_64",
          "2025-08-14T22:04:00Z", "/dev/xvda"),
    Image("ami-0deb13a0000000002", DEBIAN, "debian-13-amd64-20251006-2257", "x86_64",
          "2025-10-06T22:57:00Z", "/dev/xvda"),
    Image("ami-0deb13a0000000003", DEBIAN, "debian-13-amd64-20251117-2259", "x86_64",
          "2025-11-17T22:59:00Z", "/dev/xvda"),
    # Newer than the amd64 ones, and each wrong for another reason.
    Image("ami-0deb13a0000000004", DEBIAN, "debian-13-amd64-20251201-2310", "x86_64",
          "2025-12-01T23:10:00Z", "/dev/xvda", state="pending"),
    Image("ami-0deb13b0000000001", DEBIAN, "debian-13-arm64-20251202-2311", "arm64",
          "2025-12-02T23:11:00Z", "/dev/xvda"),
    Image("ami-0deb13c0000000001", DEBIAN, "debian-13-backports-amd64-20251203-2312", "x86_64",
          "2025-12-03T23:12:00Z", "/dev/xvda"),
    Image("ami-0deb12a0000000001", DEBIAN, "debian-12-amd64-20251204-2313", "x86_64",
          "2025-12-04T23:13:00Z", "/dev/xvda"),
    Image("ami-0ca2404a000000001", CANONICAL,
          "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251128", "x86_64",
          "2025-11-28T10:00:00Z", "/dev/sda1"),
    Image("ami-0ca2404a000000002", CANONICAL,
          "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20251205", "x86_64",
          "2025-12-05T10:00:00Z", "/dev/sda1"),
)  # fmt: skip
NEWEST_DEBIAN_13_AMD64 = "ami-0deb13a0000000003"
NEWEST_UBUNTU_24_04_AMD64 = "ami-0ca2404a000000002"

_original_load_amis = AmiBackend._load_amis


def _load_amis(self: AmiBackend) -> None:
    _original_load_amis(self)
    region = self.region_name  # type: ignore[attr-defined]
    for image in IMAGES:
        self.amis[image.image_id] = Ami(
            self,
            image.image_id,
            name=image.name,
            description=image.name,
            owner_id=image.owner,
            public=True,
            virtualization_type="hvm",
            architecture=image.architecture,
            state=image.state,
            creation_date=datetime.datetime.fromisoformat(image.created.replace("Z", "+00:00")),
            hypervisor="xen",
            root_device_type="ebs",
            root_device_name=image.root_device,
            region_name=f"{region}a",
        )


def install() -> None:
    RDSResponse.describe_orderable_db_instance_options = _describe_orderable_db_instance_options  # type: ignore[method-assign]
    AmiBackend._load_amis = _load_amis  # type: ignore[method-assign]
