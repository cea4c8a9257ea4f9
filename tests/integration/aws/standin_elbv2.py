"""Elastic Load Balancing (v2) as AWS documents it, for ``moto_compat.py``.

moto 5.2 makes a load balancer ``active`` at its first description, reports a target
``healthy`` as soon as it is registered, and forgets a deregistered target at once
(``unused``). AWS's reference (ELBv2 API, DescribeTargetHealth's TargetHealth states and
reasons, and the Application Load Balancer guide) says otherwise, and the fleet's plays
rely on it: scaling down waits until a deregistered target has drained, and the rolling
configure waits until a registered one is healthy. ``install()`` makes moto behave so:

* A load balancer is ``provisioning`` for ``STANDIN_ALB_CREATE_SECONDS`` [2] after
  CreateLoadBalancer, then ``active`` (LoadBalancerState: "provisioning | active").
* A registered target is ``initial`` with reason ``Target.RegistrationInProgress`` ("The
  target is being registered with the load balancer", "The initial health checks are
  under way") for ``STANDIN_TARGET_INITIAL_SECONDS`` [2], then ``healthy`` (the stand-in
  has no way to run the health check itself).
* A deregistered target is ``draining`` with reason ``Target.DeregistrationInProgress``
  ("The target is being deregistered and connection draining is in process") for its
  target group's ``deregistration_delay.timeout_seconds`` (AWS waits that long while
  requests are in flight: the stand-in behaves as if one always were), listed by
  DescribeTargetHealth without Targets meanwhile, then ``unused`` with
  ``Target.NotRegistered`` and no longer listed.
* CreateLoadBalancer and SetSubnets for an Application Load Balancer refuse subnets in
  fewer than two Availability Zones with ``ValidationError`` (CreateLoadBalancer's Subnets:
  "[Application Load Balancers] You must specify subnets from at least two Availability
  Zones"; moto accepts one).
* A load balancer has network interfaces in its subnets with its security groups: EC2's
  DeleteSubnet and DeleteSecurityGroup answer ``DependencyViolation`` while it exists, and
  for ``STANDIN_ENI_LINGER_SECONDS`` after DeleteLoadBalancer, as for RDS and ElastiCache
  (``standin_lifecycle.py``'s holders).

The call log (``GET /cachestack-standin/calls``, ``standin_lifecycle.py``) gets
CreateLoadBalancer, DeleteLoadBalancer, CreateTargetGroup, DeleteTargetGroup (resource:
the name or ARN), and RegisterTargets and DeregisterTargets (resource: the target ids,
comma separated), and EC2's TerminateInstances (resource: the instance ids, comma
separated), with their times, so a test can see a target deregistered and drained before
its instance is terminated.
"""

from __future__ import annotations

import os
import time
from typing import Any

import standin_lifecycle
from moto.ec2.responses import EC2Response
from moto.elbv2.exceptions import ValidationError
from moto.elbv2.models import (
    ELBv2Backend,
    FakeHealthStatus,
    FakeLoadBalancer,
    FakeTargetGroup,
    elbv2_backends,
)
from moto.elbv2.responses import ELBV2Response

ALB_CREATE_SECONDS = float(os.environ.get("STANDIN_ALB_CREATE_SECONDS", "2"))
TARGET_INITIAL_SECONDS = float(os.environ.get("STANDIN_TARGET_INITIAL_SECONDS", "2"))

# id(target group) -> {target id: (target, monotonic time the state ends)}
_registering: dict[int, dict[str, float]] = {}
_draining: dict[int, dict[str, tuple[dict[str, Any], float]]] = {}
_active_at: dict[int, float] = {}  # id(load balancer) -> when it becomes active

_original_register = FakeTargetGroup.register
_original_deregister = FakeTargetGroup.deregister
_original_health_for = FakeTargetGroup.health_for
_original_describe_health = ELBv2Backend.describe_target_health
_original_create_lb = ELBv2Backend.create_load_balancer
_original_set_subnets = ELBv2Backend.set_subnets
_original_delete_lb = ELBv2Backend.delete_load_balancer


def _register(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    _original_register(self, targets)
    now = time.monotonic()
    registering = _registering.setdefault(id(self), {})
    for target in targets:
        _draining.get(id(self), {}).pop(target["Id"], None)
        registering[target["Id"]] = now + TARGET_INITIAL_SECONDS


def _deregister(self: FakeTargetGroup, targets: list[dict[str, Any]]) -> None:
    known = {
        target["Id"]: dict(self.targets[target["Id"]])
        for target in targets
        if target["Id"] in self.targets
    }
    _original_deregister(self, targets)
    delay = float(self.attributes.get("deregistration_delay.timeout_seconds", 300))
    ends = time.monotonic() + delay
    draining = _draining.setdefault(id(self), {})
    for target_id, target in known.items():
        _registering.get(id(self), {}).pop(target_id, None)
        draining[target_id] = (target, ends)


def _health_for(
    self: FakeTargetGroup, target: dict[str, Any], ec2_backend: Any
) -> FakeHealthStatus:
    now = time.monotonic()
    drained = _draining.get(id(self), {}).get(target["Id"])
    if drained is not None and drained[1] > now and target["Id"] not in self.targets:
        return FakeHealthStatus(
            target["Id"],
            drained[0]["Port"],
            self.health_check_port,
            "draining",
            "Target.DeregistrationInProgress",
            "Target deregistration is in progress",
        )
    status = _original_health_for(self, target, ec2_backend)
    initial_until = _registering.get(id(self), {}).get(target["Id"], 0.0)
    if status.status == "healthy" and initial_until > now:
        return FakeHealthStatus(
            status.instance_id,
            status.port,
            self.health_check_port,
            "initial",
            "Elb.RegistrationInProgress",
            "Target registration is in progress",
        )
    return status


def _describe_target_health(
    self: ELBv2Backend, target_group_arn: str, targets: list[dict[str, Any]]
) -> list[FakeHealthStatus]:
    if not targets:
        group = self.target_groups.get(target_group_arn)
        if group is not None:
            now = time.monotonic()
            still = [
                target
                for target_id, (target, ends) in _draining.get(id(group), {}).items()
                if ends > now and target_id not in group.targets
            ]
            targets = list(group.targets.values()) + still
            if not targets:
                return []
    return _original_describe_health(self, target_group_arn, targets)


def _check_two_zones(backend: ELBv2Backend, subnet_ids: list[str]) -> None:
    zones = {
        backend.ec2_backend.get_subnet(subnet_id).availability_zone for subnet_id in subnet_ids
    }
    if len(zones) < 2:
        raise ValidationError(
            "At least two subnets in two different Availability Zones must be specified"
        )


def _create_load_balancer(self: ELBv2Backend, *args: Any, **kwargs: Any) -> FakeLoadBalancer:
    subnet_ids = list(kwargs.get("subnet_ids") or [])
    subnet_ids += [mapping["SubnetId"] for mapping in kwargs.get("subnet_mappings") or []]
    if (kwargs.get("loadbalancer_type") or "application") == "application":
        _check_two_zones(self, subnet_ids)
    balancer = _original_create_lb(self, *args, **kwargs)
    _active_at[id(balancer)] = time.monotonic() + ALB_CREATE_SECONDS
    return balancer


def _set_subnets(self: ELBv2Backend, arn: str, subnets: list[str], subnet_mappings: Any) -> Any:
    balancer = self.load_balancers.get(arn)
    if balancer is not None and balancer.type == "application":
        _check_two_zones(self, list(subnets or []) + [m["SubnetId"] for m in subnet_mappings or []])
    return _original_set_subnets(self, arn, subnets, subnet_mappings)


def _activate(self: FakeLoadBalancer) -> None:
    if self.state == "provisioning" and _active_at.get(id(self), 0.0) <= time.monotonic():
        self.state = "active"


def _delete_load_balancer(self: ELBv2Backend, arn: str) -> None:
    balancer = self.load_balancers.get(arn)
    if balancer is not None:
        with standin_lifecycle._lock:
            standin_lifecycle._linger(
                f"load balancer {balancer.name}",
                ({subnet.id for subnet in balancer.subnets}, set(balancer.security_groups)),
            )
    _original_delete_lb(self, arn)


def _holders(response: Any) -> list[tuple[str, set[str], set[str]]]:
    backend = elbv2_backends[response.current_account][response.region]
    return [
        (
            f"load balancer {balancer.name}",
            {subnet.id for subnet in balancer.subnets},
            set(balancer.security_groups),
        )
        for balancer in backend.load_balancers.values()
    ]


def _reset() -> None:
    _registering.clear()
    _draining.clear()
    _active_at.clear()


def _logged(cls: type, service: str, operation: str, resource: Any) -> None:
    """Log every call of ``operation`` (refused or not) with ``resource(response)``."""
    method_name = "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")
    original = getattr(cls, method_name)

    def logged(self: Any) -> Any:
        named = resource(self)
        try:
            result = original(self)
        except Exception as error:
            standin_lifecycle._record(
                service, operation, named, getattr(error, "code", type(error).__name__)
            )
            raise
        standin_lifecycle._record(service, operation, named, None)
        return result

    setattr(cls, method_name, logged)


def _target_ids(response: Any) -> str:
    return ",".join(target["Id"] for target in response._get_param("Targets", []))


def _instance_ids(response: Any) -> str:
    return ",".join(response._get_param("InstanceIds", []))


def install() -> None:
    """Patch moto (once, before the server starts, after ``standin_lifecycle.install()``)."""
    FakeTargetGroup.register = _register  # type: ignore[method-assign]
    FakeTargetGroup.deregister = _deregister  # type: ignore[method-assign]
    FakeTargetGroup.health_for = _health_for  # type: ignore[method-assign]
    ELBv2Backend.describe_target_health = _describe_target_health  # type: ignore[method-assign]
    ELBv2Backend.create_load_balancer = _create_load_balancer  # type: ignore[method-assign]
    ELBv2Backend.set_subnets = _set_subnets  # type: ignore[method-assign]
    ELBv2Backend.delete_load_balancer = _delete_load_balancer  # type: ignore[method-assign]
    FakeLoadBalancer.activate = _activate  # type: ignore[method-assign]
    standin_lifecycle.EXTRA_HOLDERS.append(_holders)
    standin_lifecycle.EXTRA_RESETS.append(_reset)
    for operation in ("CreateLoadBalancer", "CreateTargetGroup"):
        _logged(ELBV2Response, "elbv2", operation, lambda r: r._get_param("Name"))
    for operation in ("DeleteLoadBalancer",):
        _logged(ELBV2Response, "elbv2", operation, lambda r: r._get_param("LoadBalancerArn"))
    _logged(ELBV2Response, "elbv2", "DeleteTargetGroup", lambda r: r._get_param("TargetGroupArn"))
    for operation in ("RegisterTargets", "DeregisterTargets"):
        _logged(ELBV2Response, "elbv2", operation, _target_ids)
    _logged(EC2Response, "ec2", "TerminateInstances", _instance_ids)
