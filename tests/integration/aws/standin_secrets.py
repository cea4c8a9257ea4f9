"""Secrets Manager's deletion, as AWS does it, for ``moto_compat.py``.

DeleteSecret with ForceDeleteWithoutRecovery deletes "asynchronously" (AWS's reference):
for a while after it, CreateSecret with the same name is refused with
``InvalidRequestException`` ("You can't create this secret because a secret with this
name is already scheduled for deletion."). moto frees the name at once, so a teardown
followed at once by provisioning passed on moto and failed on AWS. ``install()`` holds the
name for ``STANDIN_SECRET_PURGE_SECONDS`` (default 3) after such a deletion; the refusal
goes to the stand-in's call log (``standin_lifecycle.py``) like the other lifecycle rules.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import standin_lifecycle
from moto.moto_api._internal.responses import MotoAPIResponse
from moto.secretsmanager.exceptions import InvalidRequestException
from moto.secretsmanager.responses import SecretsManagerResponse

PURGE_SECONDS = float(os.environ.get("STANDIN_SECRET_PURGE_SECONDS", "3"))
_purged_at: dict[str, float] = {}  # secret name -> when AWS lets it be created again
_lock = threading.Lock()
_original_create = SecretsManagerResponse.create_secret
_original_delete = SecretsManagerResponse.delete_secret
_original_reset = MotoAPIResponse.reset_response


def _create_secret(self: SecretsManagerResponse) -> Any:
    name = self._get_param("Name")
    with _lock:
        held = _purged_at.get(name, 0.0) > time.monotonic()
    if held:
        standin_lifecycle._record(  # the shared call log
            "secretsmanager", "CreateSecret", name, "InvalidRequestException"
        )
        raise InvalidRequestException(
            "You can't create this secret because a secret with this name is already"
            " scheduled for deletion."
        )
    result = _original_create(self)
    standin_lifecycle._record("secretsmanager", "CreateSecret", name, None)
    return result


def _delete_secret(self: SecretsManagerResponse) -> Any:
    result = _original_delete(self)
    if self._get_param("ForceDeleteWithoutRecovery"):
        name = json.loads(result)["Name"]  # the SecretId may be an ARN
        with _lock:
            _purged_at[name] = time.monotonic() + PURGE_SECONDS
    return result


def _reset_response(self: MotoAPIResponse, request: Any, full_url: str, headers: Any) -> Any:
    if request.method == "POST":
        with _lock:
            _purged_at.clear()
    return _original_reset(self, request, full_url, headers)


def install() -> None:
    """Patch moto (once, before the server starts, after ``standin_lifecycle.install()``)."""
    global _original_reset  # the lifecycle's reset, patched just before
    _original_reset = MotoAPIResponse.reset_response
    SecretsManagerResponse.create_secret = _create_secret  # type: ignore[method-assign]
    SecretsManagerResponse.delete_secret = _delete_secret  # type: ignore[method-assign]
    MotoAPIResponse.reset_response = _reset_response  # type: ignore[method-assign]
