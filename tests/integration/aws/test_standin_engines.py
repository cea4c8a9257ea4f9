"""The stand-in's ElastiCache engines (``standin_elasticache_engines.py``) and its image
catalogue (``standin_catalogue.py``): one test per rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.aws.standin_catalogue import (
    CANONICAL,
    DEBIAN,
    NEWEST_DEBIAN_13_AMD64,
    NEWEST_UBUNTU_24_04_AMD64,
)
from tests.integration.aws.test_standin import client, refused, standin_calls, wait_for
from tests.servers.moto import reset_moto


@pytest.fixture(scope="module")
def standin_durations() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_CACHE_CREATE_SECONDS", "0")
        patch.setenv("STANDIN_CACHE_MODIFY_SECONDS", "1")
        yield


@pytest.fixture(scope="module")
def moto_url(standin_durations: None, moto_url: str) -> str:
    """conftest's server, started after ``standin_durations`` set the environment."""
    return moto_url


def create_group(url: str, group_id: str, **extra: Any) -> dict[str, Any]:
    return dict(
        client(url, "elasticache").create_replication_group(
            ReplicationGroupId=group_id,
            ReplicationGroupDescription="standin",
            ClusterMode="enabled",
            NumNodeGroups=1,
            ReplicasPerNodeGroup=1,
            CacheNodeType="cache.t3.micro",
            **extra,
        )["ReplicationGroup"]
    )


def described(url: str, group_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The group and every member cache cluster, as DescribeCacheClusters shows them."""
    elasticache = client(url, "elasticache")
    (group,) = elasticache.describe_replication_groups(ReplicationGroupId=group_id)[
        "ReplicationGroups"
    ]
    members = [
        elasticache.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
        for member in group["MemberClusters"]
    ]
    return group, members


def engine_of(members: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (m["Engine"], m["EngineVersion"], m["CacheParameterGroup"]["CacheParameterGroupName"])
        for m in members
    }


def available(url: str, group_id: str) -> bool:
    return described(url, group_id)[0]["Status"] == "available"


def test_members_report_the_engine_the_full_version_and_the_default_group(moto_url: str) -> None:
    create_group(moto_url, "members", Engine="redis", EngineVersion="7.1")
    group, members = described(moto_url, "members")
    assert len(members) == 2
    assert engine_of(members) == {("redis", "7.1.0", "default.redis7.cluster.on")}
    assert {m["ReplicationGroupId"] for m in members} == {"members"}
    # DescribeCacheClusters without an id lists them too.
    listed = client(moto_url, "elasticache").describe_cache_clusters()["CacheClusters"]
    assert set(group["MemberClusters"]) <= {c["CacheClusterId"] for c in listed}


def test_redis_to_valkey_in_place_changes_engine_version_and_group(moto_url: str) -> None:
    create_group(moto_url, "upgrade", Engine="redis", EngineVersion="7.1")
    before, _members = described(moto_url, "upgrade")
    client(moto_url, "elasticache").modify_replication_group(
        ReplicationGroupId="upgrade",
        Engine="valkey",
        EngineVersion="8.2",
        CacheParameterGroupName="default.valkey8.cluster.on",
        ApplyImmediately=True,
    )
    wait_for("the change to end", lambda: available(moto_url, "upgrade"))
    after, members = described(moto_url, "upgrade")
    assert after["Engine"] == "valkey"
    assert engine_of(members) == {("valkey", "8.2.0", "default.valkey8.cluster.on")}
    # In place: the same group, the same endpoint.
    assert after["ARN"] == before["ARN"]
    assert after["ConfigurationEndpoint"] == before["ConfigurationEndpoint"]


def test_valkey_back_to_redis_is_refused_and_logged(moto_url: str) -> None:
    create_group(
        moto_url,
        "downgrade",
        Engine="valkey",
        EngineVersion="8.2",
        CacheParameterGroupName="default.valkey8.cluster.on",
    )
    elasticache = client(moto_url, "elasticache")
    refused(
        "InvalidParameterCombination",
        elasticache.modify_replication_group,
        ReplicationGroupId="downgrade",
        Engine="redis",
        EngineVersion="7.1",
        CacheParameterGroupName="default.redis7.cluster.on",
        ApplyImmediately=True,
    )
    group, members = described(moto_url, "downgrade")
    assert group["Engine"] == "valkey"
    assert group["Status"] == "available"  # refused: no change started
    assert engine_of(members) == {("valkey", "8.2.0", "default.valkey8.cluster.on")}
    (call,) = [c for c in standin_calls(moto_url) if c["resource"] == "downgrade"][-1:]
    assert (call["operation"], call["error"]) == (
        "ModifyReplicationGroup",
        "InvalidParameterCombination",
    )


def newest(url: str, owner: str, name: str) -> dict[str, Any]:
    """The newest image as roles/aws_web_instance searches: owner, name, x86_64, available."""
    images = client(url, "ec2").describe_images(
        Owners=[owner],
        Filters=[
            {"Name": "name", "Values": [name]},
            {"Name": "architecture", "Values": ["x86_64"]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    assert images, f"no image of {owner} matches {name}"
    return dict(max(images, key=lambda image: image["CreationDate"]))


def test_the_newest_official_debian_13_amd64_image_is_found(moto_url: str) -> None:
    image = newest(moto_url, DEBIAN, "debian-13-amd64-*")
    assert image["ImageId"] == NEWEST_DEBIAN_13_AMD64
    assert image["OwnerId"] == DEBIAN
    assert image["RootDeviceName"] == "/dev/xvda"
    assert (
        newest(moto_url, CANONICAL, "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*")[
            "ImageId"
        ]
        == NEWEST_UBUNTU_24_04_AMD64
    )


def test_a_careless_debian_search_finds_a_wrong_newer_image(moto_url: str) -> None:
    # The traps the catalogue sets: each looser search finds a newer, wrong image.
    ec2 = client(moto_url, "ec2")

    def newest_of(filters: list[dict[str, Any]]) -> str:
        images = ec2.describe_images(Owners=[DEBIAN], Filters=filters)["Images"]
        return str(max(images, key=lambda image: image["CreationDate"])["Name"])

    assert newest_of([{"Name": "name", "Values": ["debian-13-*"]}]).startswith(
        "debian-13-backports-amd64-"
    )
    assert newest_of([{"Name": "name", "Values": ["debian-*-amd64-*"]}]).startswith("debian-12-")
    assert newest_of([{"Name": "name", "Values": ["debian-13-amd64-*"]}]) == (
        "debian-13-amd64-20251201-2310"  # still pending
    )
    # The owner matters: nobody else's images answer Debian's account.
    assert ec2.describe_images(Owners=[CANONICAL], Filters=[
        {"Name": "name", "Values": ["debian-*"]}
    ])["Images"] == []  # fmt: skip


def test_the_catalogue_outlives_a_reset(moto_url: str) -> None:
    reset_moto(moto_url)
    assert newest(moto_url, DEBIAN, "debian-13-amd64-*")["ImageId"] == NEWEST_DEBIAN_13_AMD64
