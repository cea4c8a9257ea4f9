"""``moto_server`` with one behaviour brought in line with AWS, for the AWS playbook tests.

Run as ``python moto_compat.py -H 127.0.0.1 -p PORT`` (the arguments of ``moto_server``).

moto 5.2 answers ``DescribeDBParameterGroups`` for a name that does not exist with an empty
list; AWS answers ``DBParameterGroupNotFound``. amazon.aws ``rds_instance_param_group``
relies on the AWS behaviour (with moto's answer it indexes an empty list and fails), so this
wrapper makes moto raise the same error AWS does.

moto 5.2 reports the tags of an Elastic IP with the resource type ``vpc-elastic-ip`` and
those of a NAT gateway with ``nat-gateway``; AWS says ``elastic-ip`` and ``natgateway``.
amazon.aws ``ec2_eip`` and ``ec2_vpc_nat_gateway`` read tags filtered by AWS's type, find
none on moto and set them again on every run; with AWS's types a rerun reports no change.

moto 5.2 reports no ``Iops`` nor ``StorageThroughput`` for a gp3 instance created without
them; AWS reports the gp3 baseline (3000 IOPS, 125 MiB/s below 400 GiB). amazon.aws
``rds_instance`` reads both keys of a gp3 instance, so this wrapper fills in AWS's baseline.

moto 5.2 makes every resource ready at once, and accepts calls AWS refuses while a resource
is being created, changed or deleted (it also leaves a deleted replication group
``deleting`` for ever, and forgets a deleted DB instance at once). ``standin_lifecycle.py``,
beside this file, gives replication groups, DB instances and NAT gateways AWS's states
(``creating``, ``modifying``, ``backing-up``, ``pending``, ``deleting``...), each for a
few seconds set by ``STANDIN_*_SECONDS`` environment variables, refuses what AWS refuses
meanwhile with AWS's error codes, and logs those calls at ``GET /cachestack-standin/calls``
(emptied by ``POST /moto-api/reset``). Its docstring lists the states, the variables, the
refusals and the log's format. A deleted replication group disappears after its
``deleting`` time, so the same stack can be provisioned again after a teardown.

moto 5.2 lists only the parameters a user set in a DB parameter group; AWS lists every
parameter of the family with its engine default. amazon.aws ``rds_instance_param_group``
only sets a parameter AWS lists, so on moto it refuses ``log_connections``. The wrapper
lists the PostgreSQL parameters the database role sets, with AWS's metadata.

moto 5.2 does not implement ``ModifyCacheSubnetGroup`` nor ``DeleteCacheSubnetGroup``. The
cache role updates the subnet group of a stack built again (new subnets) and deletes it on
a teardown that waits; the wrapper implements both the plain way AWS does.

moto 5.2 ignores ``AuthToken`` in ``ModifyReplicationGroup``. The wrapper keeps the tokens
a group accepts as AWS does: ``ROTATE`` adds the new one beside the current one, ``SET``
leaves only the new one. They are in the group's ``accepted_auth_tokens``, and the
strategies used, in order, in its ``auth_token_updates``.

moto 5.2's ``/moto-api/data.json`` (its dump of every model, for debugging) fails with a
500 as soon as an RDS instance exists: some of its attributes raise NotImplementedError,
which the dump does not expect. The wrapper's dump leaves out every attribute it cannot
read, and lets an instance's master password be read, so the tests can see which password
RDS was given (AWS's API never returns it, nor does moto's).

``standin_secrets.py`` holds a force-deleted secret's name for a few seconds, as AWS does.
``standin_catalogue.py`` makes DescribeOrderableDBInstanceOptions list PostgreSQL's instance
options by zone, as AWS does (moto lists none), and registers the official Debian and
Ubuntu images under their owners' accounts (moto's own images predate both).
``standin_elasticache_engines.py`` makes ModifyReplicationGroup change the engine, version
and parameter group as AWS does (refusing Valkey back to Redis OSS with
``InvalidParameterCombination``) and lets DescribeCacheClusters describe a group's member
clusters (moto has none).
``standin_elbv2.py`` gives load balancers and targets AWS's states (``provisioning``,
``initial``, ``draining`` for the deregistration delay), refuses an Application Load
Balancer in fewer than two zones, and lets a load balancer hold its subnets and security
groups as RDS and ElastiCache do.

Nothing else differs from ``moto_server``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# Run as a script, this file's directory is on sys.path: the sibling module imports as is.
import standin_catalogue
import standin_elasticache_engines
import standin_elasticache_resize
import standin_elbv2
import standin_lifecycle
import standin_secrets
from moto.core import model_instances
from moto.core.responses import ActionResult
from moto.ec2 import utils as ec2_utils
from moto.elasticache.exceptions import CacheSubnetGroupNotFound
from moto.elasticache.models import CacheSubnetGroup, ReplicationGroup
from moto.elasticache.responses import ElastiCacheResponse
from moto.moto_api._internal.responses import MotoAPIResponse
from moto.rds.exceptions import DBParameterGroupNotFoundError
from moto.rds.models import DBInstance, RDSBackend
from moto.rds.responses import RDSResponse
from moto.server import main

_original_describe = RDSBackend.describe_db_parameter_groups


def _describe_db_parameter_groups(
    self: RDSBackend, db_parameter_group_kwargs: dict[str, Any]
) -> Any:
    groups = _original_describe(self, db_parameter_group_kwargs)
    name = db_parameter_group_kwargs.get("db_parameter_group_name")
    if name and not groups:
        raise DBParameterGroupNotFoundError(name)
    return groups


RDSBackend.describe_db_parameter_groups = _describe_db_parameter_groups  # type: ignore[method-assign]
# The mapping is shared by reference with moto.ec2.models.tags, so update it in place.
ec2_utils.EC2_PREFIX_TO_RESOURCE["eipalloc"] = "elastic-ip"
ec2_utils.EC2_PREFIX_TO_RESOURCE["nat"] = "natgateway"

# PostgreSQL engine defaults as AWS describes them (only those the database role sets).
POSTGRES_DEFAULTS: dict[str, dict[str, Any]] = {
    "log_connections": {
        "ParameterName": "log_connections",
        "Description": "Logs each successful connection.",
        "Source": "engine-default",
        "ApplyType": "dynamic",
        "DataType": "boolean",
        "AllowedValues": "0,1",
        "IsModifiable": True,
        "ApplyMethod": "pending-reboot",
    },
}


def _describe_db_parameters(self: RDSResponse) -> ActionResult:
    name = self.params.get("DBParameterGroupName")
    groups = self.backend.describe_db_parameter_groups({"db_parameter_group_name": name})
    if not groups:
        raise DBParameterGroupNotFoundError(name)
    group = groups[0]
    parameters: dict[str, dict[str, Any]] = {}
    if str(group.family).startswith("postgres"):
        parameters.update({key: dict(value) for key, value in POSTGRES_DEFAULTS.items()})
    for key, value in group.parameters.items():
        merged = {**parameters.get(key, {}), **value}
        if key in POSTGRES_DEFAULTS:
            merged["Source"] = "user"
        parameters[key] = merged
    return ActionResult({"Parameters": list(parameters.values())})


RDSResponse.describe_db_parameters = _describe_db_parameters  # type: ignore[method-assign]

_original_init = DBInstance.__init__


def _db_instance_init(self: DBInstance, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    if self.storage_type == "gp3":
        self.iops = self.iops or 3000
        self.storage_throughput = self.storage_throughput or 125


DBInstance.__init__ = _db_instance_init  # type: ignore[method-assign]


def _modify_cache_subnet_group(self: ElastiCacheResponse) -> ActionResult:
    backend = self.elasticache_backend
    name = self._get_param("CacheSubnetGroupName")
    current = backend.cache_subnet_groups.get(name)
    if current is None:
        raise CacheSubnetGroupNotFound(name)
    group = CacheSubnetGroup(
        account_id=backend.account_id,
        region_name=backend.region_name,
        cache_subnet_group_name=name,
        cache_subnet_group_description=self._get_param(
            "CacheSubnetGroupDescription", current.cache_subnet_group_description
        ),
        subnet_ids=self._get_param("SubnetIds", current.subnet_ids),
        tags=current.tags,
    )
    backend.cache_subnet_groups[name] = group
    return ActionResult({"CacheSubnetGroup": group})


def _delete_cache_subnet_group(self: ElastiCacheResponse) -> ActionResult:
    name = self._get_param("CacheSubnetGroupName")
    if self.elasticache_backend.cache_subnet_groups.pop(name, None) is None:
        raise CacheSubnetGroupNotFound(name)
    return ActionResult({})


ElastiCacheResponse.modify_cache_subnet_group = _modify_cache_subnet_group  # type: ignore[attr-defined]
ElastiCacheResponse.delete_cache_subnet_group = _delete_cache_subnet_group  # type: ignore[attr-defined]

_original_group_init = ReplicationGroup.__init__
_original_modify_group = ElastiCacheResponse.modify_replication_group


def _replication_group_init(self: ReplicationGroup, *args: Any, **kwargs: Any) -> None:
    _original_group_init(self, *args, **kwargs)
    token = kwargs.get("auth_token")
    self.accepted_auth_tokens = [token] if token else []


def _modify_replication_group(self: ElastiCacheResponse) -> ActionResult:
    result = _original_modify_group(self)
    token = self._get_param("AuthToken")
    if token:
        group = self.elasticache_backend.replication_groups[self._get_param("ReplicationGroupId")]
        strategy = self._get_param("AuthTokenUpdateStrategy")
        if strategy == "SET":
            group.accepted_auth_tokens = [token]
        else:  # ROTATE: the newest token already accepted stays beside the new one
            group.accepted_auth_tokens = [*group.accepted_auth_tokens[-1:], token]
        group.auth_token_updates = [*getattr(group, "auth_token_updates", []), strategy]
        group.auth_token_enabled = True
    return result


ReplicationGroup.__init__ = _replication_group_init  # type: ignore[method-assign]


ElastiCacheResponse.modify_replication_group = _modify_replication_group  # type: ignore[method-assign]
DBInstance.master_user_password = property(  # type: ignore[method-assign,assignment]
    lambda self: self._master_user_password, DBInstance.master_user_password.fset
)


def _model_data(self: MotoAPIResponse, request: Any, full_url: str, headers: Any) -> Any:
    results: dict[str, dict[str, list[Any]]] = {}
    for service, models in sorted(model_instances.model_data.items()):
        results[service] = {}
        for name, model in sorted(models.items()):
            results[service][name] = []
            for instance in model.instances_tracked:  # type: ignore[attr-defined]
                readable = {}
                for attribute in dir(instance):
                    if attribute.startswith("_"):
                        continue
                    try:
                        value = getattr(instance, attribute)
                        json.dumps(value)
                    except Exception:  # noqa: S112 (an unreadable attribute is left out)
                        continue
                    readable[attribute] = value
                results[service][name].append(readable)
    return 200, {"Content-Type": "application/javascript"}, json.dumps(results)


MotoAPIResponse.model_data = _model_data  # type: ignore[method-assign]
# After the patches above, and before the lifecycle wraps the response methods they set
# (so its call log records the engine refusals too).
standin_elasticache_engines.install()
standin_lifecycle.install()
standin_catalogue.install()
standin_secrets.install()
standin_elasticache_resize.install()
standin_elbv2.install()

if __name__ == "__main__":
    main(sys.argv[1:])
