"""Unit tests for cachestack.aws.aws_az_offerings_info: the zone logic, and the requests
the module sends, checked against botocore's service models by its Stubber."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

_COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.cachestack.aws.plugins.module_utils import (  # noqa: E402
    _az_offerings as logic,
)
from ansible_collections.cachestack.aws.plugins.modules import (  # noqa: E402
    aws_az_offerings_info as module,
)

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"]


@contextmanager
def stubbed(service: str) -> Iterator[tuple[Any, Stubber]]:
    """A client of the service behind botocore's Stubber; every queued answer must be used."""
    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_common_zones_are_those_offering_everything_sorted() -> None:
    offered = {
        "ec2:t3.micro": {"us-east-1c", "us-east-1a", "us-east-1b"},
        "rds:db.t3.micro": {"us-east-1b", "us-east-1c", "us-east-1e"},
    }
    assert logic.common_zones(ZONES, offered) == ["us-east-1b", "us-east-1c"]


def test_a_zone_that_is_not_available_is_never_chosen() -> None:
    assert logic.common_zones(["us-east-1a"], {"ec2:t3.micro": {"us-east-1a", "us-east-1z"}}) == [
        "us-east-1a"
    ]


def test_nothing_asked_keeps_every_available_zone() -> None:
    assert logic.common_zones(ZONES, {}) == ZONES


def test_no_shortfall_when_enough_zones_offer_everything() -> None:
    assert logic.shortfall(ZONES, {"ec2:t3.micro": {"us-east-1a", "us-east-1b"}}, 2) is None


def test_a_shortfall_names_where_each_resource_is_offered() -> None:
    said = logic.shortfall(
        ZONES,
        {"ec2:t3.micro": {"us-east-1a", "us-east-1b"}, "rds:db.x9.huge": {"us-east-1c"}},
        2,
    )
    assert said == (
        "0 availability zone(s) offer everything (none), 2 needed: "
        "ec2:t3.micro in ['us-east-1a', 'us-east-1b']; rds:db.x9.huge in ['us-east-1c']"
    )


@pytest.mark.parametrize(
    ("wanted", "offered", "matches"),
    [
        ("16", "16.4", True),
        ("16", "16", True),
        ("16", "160.1", False),
        ("16.4", "16.4", True),
        ("16.4", "16.40", False),
        ("", "17.2", True),
    ],
)
def test_engine_versions_match_by_their_parts(wanted: str, offered: str, matches: bool) -> None:
    assert logic.engine_version_matches(wanted, offered) is matches


def test_rds_zones_keep_in_vpc_options_of_the_version() -> None:
    options = [
        {"EngineVersion": "16.4", "Vpc": True, "AvailabilityZones": [{"Name": "us-east-1a"}]},
        {"EngineVersion": "16.4", "Vpc": False, "AvailabilityZones": [{"Name": "us-east-1b"}]},
        {"EngineVersion": "15.8", "Vpc": True, "AvailabilityZones": [{"Name": "us-east-1c"}]},
        {"EngineVersion": "16.6", "Vpc": True, "AvailabilityZones": [{"Name": "us-east-1e"}]},
    ]
    assert logic.rds_zones(options, "16") == {"us-east-1a", "us-east-1e"}


def test_instance_type_zones_asks_ec2_by_availability_zone() -> None:
    with stubbed("ec2") as (ec2, stub):
        stub.add_response(
            "describe_instance_type_offerings",
            {
                "InstanceTypeOfferings": [
                    {
                        "InstanceType": "t3.micro",
                        "LocationType": "availability-zone",
                        "Location": zone,
                    }
                    for zone in ("us-east-1a", "us-east-1b")
                ]
            },
            {
                "LocationType": "availability-zone",
                "Filters": [{"Name": "instance-type", "Values": ["t3.micro"]}],
            },
        )
        assert module.instance_type_zones(ec2, "t3.micro") == {"us-east-1a", "us-east-1b"}


def test_db_class_zones_asks_rds_for_the_class_in_a_vpc() -> None:
    with stubbed("rds") as (rds, stub):
        stub.add_response(
            "describe_orderable_db_instance_options",
            {
                "OrderableDBInstanceOptions": [
                    {
                        "Engine": "postgres",
                        "EngineVersion": "16.4",
                        "DBInstanceClass": "db.t3.micro",
                        "Vpc": True,
                        "AvailabilityZones": [{"Name": "us-east-1b"}, {"Name": "us-east-1c"}],
                    }
                ]
            },
            {"Engine": "postgres", "DBInstanceClass": "db.t3.micro", "Vpc": True},
        )
        assert module.db_class_zones(rds, "postgres", "16", "db.t3.micro") == {
            "us-east-1b",
            "us-east-1c",
        }
