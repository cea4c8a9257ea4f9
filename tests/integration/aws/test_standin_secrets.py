"""The moto stand-in holds a force-deleted secret's name for a while, as AWS does
(``standin_secrets.py``), and logs the refusal; conftest's module-scoped server."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.servers.moto import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, REGION

NAME = "cachestack/db-master-password"


@pytest.fixture(scope="module")
def purge_seconds() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STANDIN_SECRET_PURGE_SECONDS", "2")
        yield


@pytest.fixture(scope="module")
def moto_url(purge_seconds: None, moto_url: str) -> str:
    """conftest's server, started after ``purge_seconds`` set the environment."""
    return moto_url


def test_a_force_deleted_secret_name_is_refused_then_free_again(moto_url: str) -> None:
    secrets = boto3.client(
        "secretsmanager",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
    )
    arn = secrets.create_secret(Name=NAME, SecretString="first")["ARN"]
    # By ARN, as a user might: the name is held all the same.
    secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as caught:
        secrets.create_secret(Name=NAME, SecretString="second")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "already scheduled for deletion" in caught.value.response["Error"]["Message"]

    deadline = time.monotonic() + 15
    while True:
        try:
            secrets.create_secret(Name=NAME, SecretString="second")
            break
        except ClientError:
            assert time.monotonic() < deadline, "the name was still held after 15 s"
            time.sleep(0.2)
    assert secrets.get_secret_value(SecretId=NAME)["SecretString"] == "second"

    with urllib.request.urlopen(f"{moto_url}/cachestack-standin/calls", timeout=10) as response:  # noqa: S310
        calls = [c for c in json.load(response) if c["service"] == "secretsmanager"]
    assert calls[0] == {**calls[0], "operation": "CreateSecret", "error": None}
    assert calls[1] == {**calls[1], "operation": "CreateSecret", "error": "InvalidRequestException"}
    assert calls[-1] == {**calls[-1], "operation": "CreateSecret", "error": None}
    assert {c["resource"] for c in calls} == {NAME}
