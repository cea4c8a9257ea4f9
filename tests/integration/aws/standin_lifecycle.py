"""AWS's resource lifecycle for ``moto_compat.py``: states that take time, and the calls
AWS refuses meanwhile.

moto makes every resource ready at once and accepts calls AWS refuses while a resource is
still being created, changed or deleted. ``install()`` (called by ``moto_compat.py``) adds
the states below, written from AWS's API reference (botocore's service models): their
operation documentation, their error shapes and codes.

States (each lasts the number of seconds in its environment variable, read when the
server starts; the default is in brackets; ``0`` skips the state):

* ElastiCache replication group: ``creating`` after CreateReplicationGroup
  (``STANDIN_CACHE_CREATE_SECONDS`` [3]), ``modifying`` after ModifyReplicationGroup
  (``STANDIN_CACHE_MODIFY_SECONDS`` [2]), then ``available``; ``deleting`` after
  DeleteReplicationGroup (``STANDIN_CACHE_DELETE_SECONDS`` [2]), then gone (its id can be
  used again). The node groups' ``Status`` follows the group's. AWS's reference does not
  say whether endpoints are listed while ``creating``, so they stay listed.
* RDS DB instance: ``creating`` after CreateDBInstance (``STANDIN_DB_CREATE_SECONDS`` [3]),
  with no ``Endpoint`` ("The endpoint might not be shown for instances with the status of
  creating"), then ``backing-up`` when BackupRetentionPeriod > 0 (AWS takes the first
  automated backup; ``STANDIN_DB_BACKUP_SECONDS`` [2]), then ``available``;
  ``deleting`` after DeleteDBInstance (``STANDIN_DB_DELETE_SECONDS`` [2]), then gone
  (moto drops it at once).
* EC2 NAT gateway: ``pending`` after CreateNatGateway (``STANDIN_NAT_CREATE_SECONDS`` [2]),
  then ``available``; ``deleting`` after DeleteNatGateway (``STANDIN_NAT_DELETE_SECONDS``
  [2]), then ``deleted``, which frees its Elastic IP (AWS: "Deleting a public NAT gateway
  disassociates its Elastic IP address").

States move on lazily: every request first moves each resource to the state its clock
says (``time.monotonic``), so a state always ends once its time has passed.

Refusals (AWS's error codes):

* ElastiCache ``InvalidReplicationGroupState`` for ModifyReplicationGroup,
  DeleteReplicationGroup, CreateSnapshot, and ListTagsForResource, AddTagsToResource,
  RemoveTagsFromResource on a group's ARN, while the group is not ``available`` ("If the
  cluster is not in the available state, ListTagsForResource returns an error").
  IncreaseReplicaCount, DecreaseReplicaCount and ModifyReplicationGroupShardConfiguration
  are not implemented by moto, so there is nothing to refuse.
  ``CacheSubnetGroupInUse`` for DeleteCacheSubnetGroup while a group uses the subnet group.
* RDS ``InvalidDBInstanceState`` for ModifyDBInstance unless the instance is ``available``
  or ``stopped``; for DeleteDBInstance of an instance already ``deleting``, and of one in
  any other state than ``available`` or ``stopped`` unless SkipFinalSnapshot is set (the
  reference: the status is ``deleting`` "until the DB snapshot is created", and an instance
  in a failed state can "only" be deleted when skipping the final snapshot).
  ``InvalidDBSubnetGroupStateFault`` for DeleteDBSubnetGroup while an instance uses it
  ("must not be associated with any DB instances").
* EC2 ``DependencyViolation`` for DetachInternetGateway while a public NAT gateway of the
  VPC is ``pending``, ``available`` or ``deleting`` (AWS: "Network vpc-... has some mapped
  public address(es)..."); for DeleteSubnet and DeleteSecurityGroup while a NAT gateway
  (not yet ``deleted``; its subnet), a DB instance or a replication group (until they are
  gone, ``deleting`` included: their DB or cache subnet group's subnets and their VPC
  security groups) still has network interfaces there, and for
  ``STANDIN_ENI_LINGER_SECONDS`` [5] after a DB instance or replication group is gone (on
  AWS their requester-managed interfaces are released some time after the resource
  itself: the seconds to minutes of DependencyViolation a teardown meets).
  ``InvalidIPAddress.InUse`` for ReleaseAddress of an Elastic IP a NAT gateway not yet
  ``deleted`` uses (ReleaseAddress: "You must disassociate the Elastic IP address before
  you can release it. Otherwise, Amazon EC2 returns an error (InvalidIPAddress.InUse)").

Call log: ``GET /cachestack-standin/calls`` answers a JSON list, oldest first, of every
call of the operations above (refused or not, and the Create/Delete calls that start a
state), one object per call::

    {"service": "elasticache" | "rds" | "ec2", "operation": "ModifyReplicationGroup",
     "resource": "<the id or ARN the call names, or null>",
     "error": "<AWS error code>" | null, "time": <seconds since the epoch, float>}

``resource`` is the call's ReplicationGroupId (CreateSnapshot: else CacheClusterId),
ResourceName (the tag calls: an ARN), DBInstanceIdentifier, NatGatewayId,
InternetGatewayId, SubnetId, GroupId (else GroupName), AllocationId (else PublicIp),
CacheSubnetGroupName or DBSubnetGroupName; for CreateNatGateway it is the new gateway's id.
A refused call and its retry name the same resource the same way. ``error`` is null when
the call succeeded, else the code of the error it answered (the stand-in's refusals and
moto's own errors alike). ``POST /moto-api/reset`` empties the log and forgets every clock.

The error codes are AWS's (botocore's error shapes; EC2's from its reference text); the
messages are close to AWS's but not guaranteed to be word for word.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.utils import camelcase_to_underscores
from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.responses import EC2Response
from moto.elasticache.models import ElastiCacheBackend, elasticache_backends
from moto.elasticache.responses import ElastiCacheResponse
from moto.moto_api._internal.responses import MotoAPIResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.rds.exceptions import RDSClientError
from moto.rds.models import DBInstance, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

CALLS_PATH = "/cachestack-standin/calls"


def _seconds(name: str, default: float) -> float:
    value = float(os.environ.get(name, default))
    if value < 0:
        raise ValueError(f"{name} must be 0 or more seconds, not {value}")
    return value


CACHE_CREATE_SECONDS = _seconds("STANDIN_CACHE_CREATE_SECONDS", 3)
CACHE_MODIFY_SECONDS = _seconds("STANDIN_CACHE_MODIFY_SECONDS", 2)
CACHE_DELETE_SECONDS = _seconds("STANDIN_CACHE_DELETE_SECONDS", 2)
DB_CREATE_SECONDS = _seconds("STANDIN_DB_CREATE_SECONDS", 3)
DB_BACKUP_SECONDS = _seconds("STANDIN_DB_BACKUP_SECONDS", 2)
DB_DELETE_SECONDS = _seconds("STANDIN_DB_DELETE_SECONDS", 2)
NAT_CREATE_SECONDS = _seconds("STANDIN_NAT_CREATE_SECONDS", 2)
NAT_DELETE_SECONDS = _seconds("STANDIN_NAT_DELETE_SECONDS", 2)
ENI_LINGER_SECONDS = _seconds("STANDIN_ENI_LINGER_SECONDS", 5)

# NAT gateway states in which it still has its network interface and public address.
NAT_HOLDING = ("pending", "available", "deleting")
# DB instance states in which AWS can take a final snapshot / accept ModifyDBInstance.
DB_SETTLED = ("available", "stopped")

# One lock for the clocks, the log and the check-then-act of a guarded call: the server
# answers requests in threads.
_lock = threading.RLock()
_calls: list[dict[str, Any]] = []
# Interfaces of resources already gone: (resource id, subnet ids, security group ids, until).
_lingering: list[tuple[str, set[str], set[str], float]] = []
# Other modules' holders of network interfaces (standin_elbv2.py: load balancers), each
# called with the EC2 response, and what they forget on a reset.
EXTRA_HOLDERS: list[Callable[[Any], Iterable[tuple[str, set[str], set[str]]]]] = []
EXTRA_RESETS: list[Callable[[], None]] = []


@dataclass
class _Clock:
    """The states a resource still has to pass through, and what happens after them."""

    apply: Callable[[str], None]
    steps: list[tuple[str, float]]  # (state, monotonic time it ends), in order
    then: str | Callable[[], None]  # the state after the last step, or how it goes away


_clocks: dict[int, tuple[Any, _Clock]] = {}  # id(resource) -> (resource, its clock)


def _start(
    resource: Any,
    apply: Callable[[str], None],
    states: Iterable[tuple[str, float]],
    then: str | Callable[[], None],
) -> None:
    """Put ``resource`` through ``states`` (name, seconds) from now, then ``then``."""
    ends = time.monotonic()
    steps = []
    for state, seconds in states:
        ends += seconds
        steps.append((state, ends))
    with _lock:
        _clocks[id(resource)] = (resource, _Clock(apply, steps, then))
        settle()


def settle() -> None:
    """Move every resource to the state its clock says now."""
    now = time.monotonic()
    with _lock:
        for key, (_resource, clock) in list(_clocks.items()):
            while clock.steps and clock.steps[0][1] <= now:
                clock.steps.pop(0)
            if clock.steps:
                clock.apply(clock.steps[0][0])
                continue
            del _clocks[key]
            if callable(clock.then):
                clock.then()
            else:
                clock.apply(clock.then)


def _reset() -> None:
    with _lock:
        _clocks.clear()
        _calls.clear()
        _lingering.clear()
        for reset in EXTRA_RESETS:
            reset()


def calls() -> list[dict[str, Any]]:
    """The call log (see the module docstring)."""
    with _lock:
        return [dict(call) for call in _calls]


Check = Callable[[Any, Any], Any]
After = Callable[[Any, Any, Any, Any], None]


def _param(response: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        value = response._get_param(name)
        if value:
            return value
    return None


def _guard(
    cls: type,
    service: str,
    operation: str,
    names: tuple[str, ...],
    check: Check | None = None,
    after: After | None = None,
) -> None:
    """Wrap the response method of ``operation``: log it, refuse it, start a clock after it.

    ``check(response, resource)`` raises AWS's error to refuse the call; what it returns is
    passed on to ``after(response, resource, result, checked)``, which runs on success.
    """
    method_name = camelcase_to_underscores(operation)
    original = getattr(cls, method_name)

    @functools.wraps(original)
    def guarded(self: Any) -> Any:
        resource = _param(self, names)
        with _lock:
            try:
                checked = check(self, resource) if check else None
                result = original(self)
                if after:
                    after(self, resource, result, checked)
                    resource = resource or getattr(self, "standin_resource", None)
            except ServiceException as error:
                _record(service, operation, resource, error.code)
                raise
            _record(service, operation, resource, None)
            return result

    setattr(cls, method_name, guarded)


def _record(service: str, operation: str, resource: Any, error: str | None) -> None:
    """Add a call to the log (``standin_secrets.py`` logs its calls here too)."""
    call = {
        "service": service,
        "operation": operation,
        "resource": resource,
        "error": error,
        "time": time.time(),
    }
    with _lock:  # the log is read and emptied from other threads
        _calls.append(call)


# --- ElastiCache ---------------------------------------------------------------------


class InvalidReplicationGroupState(ServiceException):
    code = "InvalidReplicationGroupState"


class CacheSubnetGroupInUse(ServiceException):
    code = "CacheSubnetGroupInUse"


def _cache(response: Any) -> ElastiCacheBackend:
    return response.elasticache_backend  # type: ignore[no-any-return]


def _group_available(response: Any, group_id: str | None) -> None:
    group = _cache(response).replication_groups.get(group_id or "")
    if group is not None and group.status != "available":
        raise InvalidReplicationGroupState(
            f"Replication group {group_id} is not in available state (it is {group.status})."
        )


def _tagged_group_available(response: Any, arn: str | None) -> None:
    if arn and ":replicationgroup:" in arn:
        _group_available(response, arn.rsplit(":", 1)[1])


def _group_states(group: Any) -> Callable[[str], None]:
    def apply(state: str) -> None:
        group.status = state
        for node_group in group.node_groups:
            node_group["status"] = state

    return apply


def _group_created(response: Any, group_id: str, result: Any, checked: Any) -> None:
    group = _cache(response).replication_groups[group_id]
    _start(group, _group_states(group), [("creating", CACHE_CREATE_SECONDS)], "available")


def _group_modified(response: Any, group_id: str, result: Any, checked: Any) -> None:
    group = _cache(response).replication_groups[group_id]
    _start(group, _group_states(group), [("modifying", CACHE_MODIFY_SECONDS)], "available")


def _group_deleted(response: Any, group_id: str, result: Any, checked: Any) -> None:
    groups = _cache(response).replication_groups
    group = groups[group_id]

    interfaces = _group_interfaces(_cache(response), group)

    def gone() -> None:
        if groups.get(group_id) is group:
            del groups[group_id]
            _linger(group_id, interfaces)

    _start(group, _group_states(group), [("deleting", CACHE_DELETE_SECONDS)], gone)


def _cache_subnet_group_unused(response: Any, name: str | None) -> None:
    for group in _cache(response).replication_groups.values():
        if name and group.cache_subnet_group_name == name:
            raise CacheSubnetGroupInUse(
                f"Cache subnet group {name} is in use by replication group "
                f"{group.replication_group_id}."
            )


def _install_elasticache() -> None:
    def guard(operation: str, names: tuple[str, ...], **hooks: Any) -> None:
        _guard(ElastiCacheResponse, "elasticache", operation, names, **hooks)

    group_id = ("ReplicationGroupId",)
    guard("CreateReplicationGroup", group_id, after=_group_created)
    guard("ModifyReplicationGroup", group_id, check=_group_available, after=_group_modified)
    guard("DeleteReplicationGroup", group_id, check=_group_available, after=_group_deleted)
    guard("CreateSnapshot", ("ReplicationGroupId", "CacheClusterId"), check=_group_available)
    for operation in ("ListTagsForResource", "AddTagsToResource", "RemoveTagsFromResource"):
        guard(operation, ("ResourceName",), check=_tagged_group_available)
    guard("DeleteCacheSubnetGroup", ("CacheSubnetGroupName",), check=_cache_subnet_group_unused)


# --- RDS -----------------------------------------------------------------------------


def _rds(response: Any) -> RDSBackend:
    return response.backend  # type: ignore[no-any-return]


def _db_states(database: Any) -> Callable[[str], None]:
    def apply(state: str) -> None:
        database.status = state

    return apply


def _db_modifiable(response: Any, db_id: str | None) -> None:
    database = _rds(response).databases.get(db_id or "")
    if database is not None and database.status not in DB_SETTLED:
        raise RDSClientError(
            "InvalidDBInstanceState",
            f"Database instance {db_id} is not in available state (it is {database.status}).",
        )


def _db_deletable(response: Any, db_id: str | None) -> None:
    database = _rds(response).databases.get(db_id or "")
    if database is None:
        return
    if database.status == "deleting":
        raise RDSClientError(
            "InvalidDBInstanceState", f"Instance {db_id} is already being deleted."
        )
    skip = str(response._get_param("SkipFinalSnapshot", False)).lower() == "true"
    if database.status not in DB_SETTLED and not skip:
        raise RDSClientError(
            "InvalidDBInstanceState",
            f"Instance {db_id} is currently {database.status} - a final snapshot cannot be taken.",
        )


def _db_created(response: Any, db_id: str, result: Any, checked: Any) -> None:
    database = _rds(response).databases[db_id]
    states = [("creating", DB_CREATE_SECONDS)]
    if (database.backup_retention_period or 0) > 0:
        states.append(("backing-up", DB_BACKUP_SECONDS))
    _start(database, _db_states(database), states, "available")


def _db_deleted(response: Any, db_id: str, result: Any, checked: Any) -> None:
    # moto forgets the instance at once; AWS lists it as deleting for a while.
    databases = _rds(response).databases
    database = result.result["DBInstance"]
    databases[db_id] = database

    interfaces = _db_interfaces(database)

    def gone() -> None:
        if databases.get(db_id) is database:
            del databases[db_id]
            _linger(db_id, interfaces)

    _start(database, _db_states(database), [("deleting", DB_DELETE_SECONDS)], gone)


def _db_subnet_group_unused(response: Any, name: str | None) -> None:
    for database in _rds(response).databases.values():
        group = getattr(database, "db_subnet_group", None)
        if name and group is not None and group.name == name.lower():
            raise RDSClientError(
                "InvalidDBSubnetGroupStateFault",
                f"Cannot delete the subnet group '{name}' because at least one database "
                f"instance: {database.db_instance_identifier} is still using it.",
            )


def _endpoint_after_creating(original: property) -> property:
    def endpoint(self: DBInstance) -> Any:
        return None if self.status == "creating" else original.fget(self)  # type: ignore[misc]

    return property(endpoint)


def _install_rds() -> None:
    def guard(operation: str, names: tuple[str, ...], **hooks: Any) -> None:
        _guard(RDSResponse, "rds", operation, names, **hooks)

    db_id = ("DBInstanceIdentifier",)
    guard("CreateDBInstance", db_id, after=_db_created)
    guard("ModifyDBInstance", db_id, check=_db_modifiable)
    guard("DeleteDBInstance", db_id, check=_db_deletable, after=_db_deleted)
    guard("DeleteDBSubnetGroup", ("DBSubnetGroupName",), check=_db_subnet_group_unused)
    DBInstance.endpoint = _endpoint_after_creating(DBInstance.endpoint)  # type: ignore[assignment,method-assign]


# --- EC2 -----------------------------------------------------------------------------


def _nat_states(nat: Any) -> Callable[[str], None]:
    def apply(state: str) -> None:
        nat.state = state

    return apply


def _nat_created(response: Any, _subnet: Any, result: Any, checked: Any) -> None:
    nat = result.result["NatGateway"]
    response.standin_resource = nat.id
    _start(nat, _nat_states(nat), [("pending", NAT_CREATE_SECONDS)], "available")


def _nat_state(response: Any, nat_id: str | None) -> str | None:
    nat = response.ec2_backend.nat_gateways.get(nat_id or "")
    return None if nat is None else nat.state  # type: ignore[no-any-return]


def _nat_deleted(response: Any, nat_id: str, result: Any, state_before: str | None) -> None:
    ec2 = response.ec2_backend
    nat = ec2.nat_gateways[nat_id]
    if state_before in ("deleting", "deleted"):
        nat.state = state_before  # a second delete changes nothing (moto says deleted)
        return

    def deleted() -> None:
        nat.state = "deleted"
        # AWS frees the gateway's Elastic IP and removes its network interface.
        for address in nat.address_set:
            if address.get("publicIp"):
                ec2.disassociate_address(address=address["publicIp"])
        ec2.enis.pop(nat._eni.id, None)

    _start(nat, _nat_states(nat), [("deleting", NAT_DELETE_SECONDS)], deleted)


def _db_interfaces(database: Any) -> tuple[set[str], set[str]]:
    group = getattr(database, "db_subnet_group", None)
    subnets = {subnet.id for subnet in group._subnets} if group is not None else set()
    return subnets, set(database.vpc_security_group_ids)


def _group_interfaces(cache: Any, replication_group: Any) -> tuple[set[str], set[str]]:
    subnet_group = cache.cache_subnet_groups.get(replication_group.cache_subnet_group_name)
    subnets = set(subnet_group.subnet_ids) if subnet_group is not None else set()
    return subnets, set(replication_group.security_group_ids or [])


def _linger(resource_id: str, interfaces: tuple[set[str], set[str]]) -> None:
    """Keep a gone resource's interfaces for ENI_LINGER_SECONDS (called under _lock)."""
    _lingering.append((resource_id, *interfaces, time.monotonic() + ENI_LINGER_SECONDS))


def _holders(response: Any) -> Iterable[tuple[str, set[str], set[str]]]:
    """(resource id, subnet ids, security group ids) of what has network interfaces."""
    account, region = response.current_account, response.region
    for nat in response.ec2_backend.nat_gateways.values():
        if nat.state in NAT_HOLDING:
            yield nat.id, {nat.subnet_id}, set()
    for database in rds_backends[account][region].databases.values():
        yield database.db_instance_identifier, *_db_interfaces(database)
    cache = elasticache_backends[account][region]
    for replication_group in cache.replication_groups.values():
        yield replication_group.replication_group_id, *_group_interfaces(cache, replication_group)
    for holders in EXTRA_HOLDERS:
        yield from holders(response)
    now = time.monotonic()
    for resource_id, subnets, groups, until in _lingering:
        if until > now:
            yield f"{resource_id}'s network interfaces, still being released", subnets, groups


def _subnet_unused(response: Any, subnet_id: str | None) -> None:
    for holder, subnets, _groups in _holders(response):
        if subnet_id in subnets:
            raise DependencyViolationError(
                f"The subnet '{subnet_id}' has dependencies and cannot be deleted. ({holder})"
            )


def _security_group_unused(response: Any, name_or_id: str | None) -> None:
    group = response.ec2_backend.get_security_group_by_name_or_id(name_or_id or "")
    group_id = group.id if group is not None else name_or_id
    for holder, _subnets, groups in _holders(response):
        if group_id in groups:
            raise DependencyViolationError(f"resource {group_id} has a dependent object ({holder})")


def _no_mapped_public_address(response: Any, _igw_id: str | None) -> None:
    vpc_id = response._get_param("VpcId")
    for nat in response.ec2_backend.nat_gateways.values():
        if nat.vpc_id == vpc_id and nat.state in NAT_HOLDING and nat.connectivity_type != "private":
            raise DependencyViolationError(
                f"Network {vpc_id} has some mapped public address(es). Please unmap those "
                "public address(es) before detaching the gateway."
            )


def _address_unused(response: Any, address: str | None) -> None:
    for nat in response.ec2_backend.nat_gateways.values():
        if nat.state not in NAT_HOLDING:
            continue
        for mapping in nat.address_set:
            if address in (mapping.get("allocationId"), mapping.get("publicIp")):
                raise EC2ClientError(
                    "InvalidIPAddress.InUse", f"Address {address} is in use by {nat.id}."
                )


def _install_ec2() -> None:
    def guard(operation: str, names: tuple[str, ...], **hooks: Any) -> None:
        _guard(EC2Response, "ec2", operation, names, **hooks)

    guard("CreateNatGateway", ("NatGatewayId",), after=_nat_created)
    guard("DeleteNatGateway", ("NatGatewayId",), check=_nat_state, after=_nat_deleted)
    guard("DetachInternetGateway", ("InternetGatewayId",), check=_no_mapped_public_address)
    guard("DeleteSubnet", ("SubnetId",), check=_subnet_unused)
    guard("DeleteSecurityGroup", ("GroupId", "GroupName"), check=_security_group_unused)
    guard("ReleaseAddress", ("AllocationId", "PublicIp"), check=_address_unused)


# --- Server --------------------------------------------------------------------------


def _install_server() -> None:
    original_call = DomainDispatcherApplication.__call__
    original_reset = MotoAPIResponse.reset_response

    def dispatch(self: DomainDispatcherApplication, environ: dict[str, Any], start: Any) -> Any:
        if environ.get("PATH_INFO") == CALLS_PATH:
            body = json.dumps(calls()).encode()
            start(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        settle()
        return original_call(self, environ, start)

    def reset_response(self: MotoAPIResponse, request: Any, full_url: str, headers: Any) -> Any:
        if request.method == "POST":
            _reset()
        return original_reset(self, request, full_url, headers)

    DomainDispatcherApplication.__call__ = dispatch  # type: ignore[method-assign]
    MotoAPIResponse.reset_response = reset_response  # type: ignore[method-assign]


def install() -> None:
    """Patch moto (once, before the server starts) with the lifecycle above."""
    _install_elasticache()
    _install_rds()
    _install_ec2()
    _install_server()
