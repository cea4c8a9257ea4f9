#!/usr/bin/python

# Copyright: cachestack.aws contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: elasticache_replication_group
version_added: 0.1.0
short_description: Manage an Amazon ElastiCache replication group (Redis OSS or Valkey)
description:
  - Create, modify and delete an Amazon ElastiCache replication group, with or without
    cluster mode, TLS in transit, AUTH, encryption at rest, snapshots and tags.
  - The module reads the group first, compares it with the options given and only calls
    AWS for what differs. Options that are not set are never changed.
  - Resizing uses the APIs AWS provides for it
    (C(ModifyReplicationGroupShardConfiguration) for O(num_node_groups),
    C(IncreaseReplicaCount) and C(DecreaseReplicaCount) for O(replicas_per_node_group));
    every other change goes through one C(ModifyReplicationGroup) call.
  - Several of these operations in one run are carried out one after the other, and the
    module waits for the group to be available between them (AWS refuses an operation on a
    group that is still modifying), even with O(wait=false). For the same reason it waits
    for an existing group that is creating, modifying or snapshotting to be available
    before it changes or deletes it, even with O(wait=false).
  - AWS lists and changes a group's tags only while the group is available. The module
    compares and sets O(tags) on an available group only, before any other change (which
    makes the group modifying). With O(wait=true) it first waits for a group that is not
    available; with O(wait=false) it leaves the tags of such a group alone, warns, and
    returns the tags it asked for (see RV(tags) and RV(tags_read)).
  - A group AWS could not create (status C(create-failed)) cannot be used or changed. With
    O(state=present) the module fails at once and asks to delete it; O(state=absent)
    deletes it.
author:
  - cachestack maintainers (@cachestack)
options:
  replication_group_id:
    description:
      - The replication group identifier.
    required: true
    type: str
    aliases: ['name']
  state:
    description:
      - V(present) creates or updates the group, V(absent) deletes it.
    default: present
    choices: ['present', 'absent']
    type: str
  description:
    description:
      - The description of the replication group.
      - When creating and not set, the replication group identifier is used.
    type: str
  engine:
    description:
      - The engine. Changing V(redis) to V(valkey) upgrades the group in place with one
        C(ModifyReplicationGroup) call carrying the new engine, O(engine_version) (required
        for the change) and the new family's parameter group; the group keeps its
        endpoints. AWS cannot change V(valkey) back to V(redis), so the module refuses
        that before any call.
      - AWS uses V(redis) when creating without it.
      - Redis OSS versions end at 7.1 (families C(redis4.0), C(redis5.0), C(redis6.x),
        C(redis7)); Valkey has 7.2 (C(valkey7)), 8.0 to 8.2 (C(valkey8)) and 9.0
        (C(valkey9)). A version of the other engine is refused before any call.
    choices: ['redis', 'valkey']
    type: str
  engine_version:
    description:
      - The engine version, for example V(8.2) (Valkey) or V(7.1) (Redis OSS).
      - Compared by its parts, so V(7.1) asked while V(7.1.0) runs is no change, and an
        V(x) part matches anything (V(6.x)).
      - ElastiCache never downgrades, so a version older than the running one is refused
        before any call.
    type: str
  cache_node_type:
    description:
      - The node type, for example V(cache.t4g.micro). Changing it scales the group.
    type: str
  cluster_mode:
    description:
      - Cluster mode. V(enabled) creates a sharded Redis Cluster with a configuration
        endpoint; V(compatible) is the step AWS requires between V(disabled) and V(enabled)
        on an existing group.
      - When creating and not set, AWS creates a group without cluster mode.
    choices: ['enabled', 'disabled', 'compatible']
    type: str
  num_node_groups:
    description:
      - The number of shards (node groups). More than 1 needs O(cluster_mode=enabled).
      - Changed on an existing group with C(ModifyReplicationGroupShardConfiguration);
        when shrinking, the shards with the highest ids are removed.
      - AWS gives a new shard as many nodes as the smallest shard has; with
        O(replicas_per_node_group) the module then sets the replicas of the shards that are
        left, new ones included, in the same run.
    type: int
  replicas_per_node_group:
    description:
      - The number of replicas in each shard (0 to 5).
      - Changed on an existing group with C(IncreaseReplicaCount) or
        C(DecreaseReplicaCount).
    type: int
  automatic_failover_enabled:
    description:
      - Whether a replica is promoted automatically when the primary fails. Needs at least
        one replica; cluster mode needs it on.
    type: bool
    aliases: ['automatic_failover']
  multi_az_enabled:
    description:
      - Whether Multi-AZ is on. Needs O(automatic_failover_enabled=true).
    type: bool
    aliases: ['multi_az']
  transit_encryption_enabled:
    description:
      - Whether clients must use TLS (in transit encryption).
    type: bool
  transit_encryption_mode:
    description:
      - V(preferred) accepts TLS and plaintext clients, V(required) only TLS. Used to turn
        TLS on or off on an existing group in two steps.
    choices: ['preferred', 'required']
    type: str
  auth_token:
    description:
      - The AUTH token (password) clients must send. AWS accepts 16 to 128 characters,
        letters, digits and the characters in C(!&#$^<>-) only; the module refuses others
        before any call. Needs O(transit_encryption_enabled=true) when creating.
      - AWS never returns the token, so it is not compared. It is sent when the group is
        created, when the group has no AUTH yet (as V(ROTATE), the way AWS adds AUTH), and
        whenever O(auth_token_update_strategy) is set.
    type: str
  auth_token_update_strategy:
    description:
      - Send O(auth_token) to an existing group with this strategy. V(ROTATE) adds the new
        token while the old one still works; V(SET) makes the new token the only one
        (use it after a V(ROTATE) once clients have the new token).
      - The module cannot tell whether the token already is the one given, so a run with
        this option set always reports a change. Set it only on the run that rotates.
    choices: ['SET', 'ROTATE']
    type: str
  at_rest_encryption_enabled:
    description:
      - Whether data on disk is encrypted. AWS fixes it when the group is created; a
        different value for an existing group is an error.
    type: bool
  kms_key_id:
    description:
      - The KMS key (id, ARN or alias) for encryption at rest. Needs
        O(at_rest_encryption_enabled=true). Fixed when the group is created.
    type: str
  port:
    description:
      - The port the nodes listen on. Fixed when the group is created.
    type: int
  cache_parameter_group_name:
    description:
      - The cache parameter group.
      - When not set and creating with O(engine_version), AWS's default group of the
        engine's family is used, C(default.<family>.cluster.on) with
        O(cluster_mode=enabled) (for example C(default.valkey8.cluster.on) for Valkey 8.2)
        and C(default.<family>) otherwise. Without O(engine_version) none is sent and AWS
        chooses.
      - When not set on an existing group, the group's parameter group is left alone,
        unless O(engine) or O(engine_version) moves the group to another family; then a
        C(default.*) group is replaced by the new family's default in the same call, and a
        group of your own is an error asking for one of the new family.
      - An AWS default group (C(default.*)) is checked against O(engine),
        O(engine_version) and O(cluster_mode) before any call (its family must be the
        version's, and cluster mode needs C(.cluster.on)); other names are not checked.
    type: str
  cache_subnet_group_name:
    description:
      - The cache subnet group (which VPC subnets the nodes live in). Fixed when the group
        is created.
    type: str
  security_group_ids:
    description:
      - The VPC security group ids. Compared as a set.
    type: list
    elements: str
  snapshot_retention_limit:
    description:
      - The number of days automatic snapshots are kept; V(0) turns them off.
    type: int
  snapshot_window:
    description:
      - The daily UTC time range for automatic snapshots, for example V(05:00-06:00).
    type: str
  preferred_maintenance_window:
    description:
      - The weekly UTC time range for maintenance, for example V(sun:06:30-sun:07:30).
    type: str
  auto_minor_version_upgrade:
    description:
      - Whether AWS applies minor engine upgrades in the maintenance window.
    type: bool
  apply_immediately:
    description:
      - Apply changes to node type, engine version and the like now rather than in the
        next maintenance window. Pending changes count as made, so a rerun does not ask for
        them again.
      - Resizing always applies immediately (the resize APIs accept nothing else).
    type: bool
    default: false
  final_snapshot_identifier:
    description:
      - With O(state=absent), the name of a snapshot AWS takes before deleting the group.
    type: str
  wait:
    description:
      - Wait until the group is available (O(state=present)) or gone (O(state=absent)).
      - With O(state=present) this also waits for a group that exists but is not available
        yet, so a later task can wait for a group an earlier task created without waiting.
        It waits before comparing the group, so the options and O(tags) are compared with
        the settled group.
      - With O(wait=false), a group that is not available has its O(tags) neither read nor
        changed (AWS refuses both), and RV(tags) holds the tags asked for. Changes other
        than tags, and O(state=absent), still wait for the group to be available first,
        because AWS refuses them before (a V(create-failed) group is deleted at once).
      - A wait for the group to be available ends at once with an error when the group
        reaches a status from which it cannot become available (V(create-failed),
        V(deleting)), rather than after O(wait_timeout).
      - Emulators that never finish deleting (moto) need O(wait=false) with O(state=absent).
      - With O(state=present), a group of the same id that is still being deleted is
        waited for and then created again; with O(wait=false) that is an error instead.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds each wait lasts at most. The module reads the group every 15
        seconds; when the time is up it fails, naming the group's last status.
    type: int
    default: 1800
notes:
  - Attributes the API does not report for a group (for example the engine version or
    security groups of a group whose member clusters cannot be described) are not
    compared, so the module never reports a change it cannot verify.
  - The returned C(actions) list names every API call made (or that would be made in
    check mode), without the auth token.
  - In check mode the module does not wait, so O(tags) of a group that is not available
    are not compared (a warning says so).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description:
      - Reads the group and reports what would be created, changed or deleted (the
        C(actions) list) without making any change.
  diff_mode:
    support: full
    description:
      - Shows the compared attributes and tags before and after (never the auth token).
"""

EXAMPLES = r"""
- name: A Valkey cluster with one shard and one replica, TLS, AUTH and encryption at rest
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    description: cachestack cache
    engine: valkey
    engine_version: "8.2"  # parameter group default.valkey8.cluster.on
    cache_node_type: cache.t4g.micro
    cluster_mode: enabled
    num_node_groups: 1
    replicas_per_node_group: 1
    automatic_failover_enabled: true
    multi_az_enabled: true
    transit_encryption_enabled: true
    auth_token: "{{ cache_auth_token }}"
    at_rest_encryption_enabled: true
    cache_subnet_group_name: cachestack-cache
    security_group_ids:
      - sg-0123456789abcdef0
    snapshot_retention_limit: 1
    tags:
      Stack: cachestack
  register: cache

- name: Connect clients to the configuration endpoint
  ansible.builtin.debug:
    msg: "{{ cache.configuration_endpoint.address }}:{{ cache.configuration_endpoint.port }}"

- name: Upgrade a Redis OSS 7.1 group to Valkey 8.2 in place (same endpoint)
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    engine: valkey
    engine_version: "8.2"
    cluster_mode: enabled
    apply_immediately: true

- name: Start creating without waiting (another task can wait later)
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    cluster_mode: enabled
    wait: false

- name: Add a second replica to every shard
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    replicas_per_node_group: 2

- name: Rotate the AUTH token (old and new both work until the SET below)
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    auth_token: "{{ new_auth_token }}"
    auth_token_update_strategy: ROTATE
    apply_immediately: true

- name: Make the new token the only one
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    auth_token: "{{ new_auth_token }}"
    auth_token_update_strategy: SET
    apply_immediately: true

- name: Delete the group
  cachestack.aws.elasticache_replication_group:
    replication_group_id: cachestack
    state: absent
"""

RETURN = r"""
replication_group_id:
  description: The replication group identifier.
  returned: always
  type: str
  sample: cachestack
actions:
  description: The AWS API calls made, or that would be made in check mode (never the token).
  returned: always
  type: list
  elements: str
  sample:
    - IncreaseReplicaCount NewReplicaCount=2
    - ModifyReplicationGroup SnapshotRetentionLimit
status:
  description:
    - The group's status (V(available), V(creating), V(modifying), V(snapshotting),
      V(deleting) or V(create-failed)).
  returned: when the group exists
  type: str
  sample: available
arn:
  description: The ARN of the group.
  returned: when the group exists
  type: str
  sample: arn:aws:elasticache:us-east-1:123456789012:replicationgroup:cachestack
engine:
  description: The engine.
  returned: when the group exists
  type: str
  sample: valkey
engine_version:
  description: The engine version the member clusters run, when AWS reports it.
  returned: when the group exists
  type: str
  sample: 8.2.0
cluster_mode:
  description: The cluster mode (V(enabled), V(disabled) or V(compatible)).
  returned: when the group exists
  type: str
  sample: enabled
cluster_enabled:
  description: Whether the group is a Redis Cluster (has shards and a configuration endpoint).
  returned: when the group exists
  type: bool
  sample: true
num_node_groups:
  description: The number of shards.
  returned: when the group exists
  type: int
  sample: 1
replicas_per_node_group:
  description: The number of replicas in each shard (null when shards differ).
  returned: when the group exists
  type: int
  sample: 1
transit_encryption_enabled:
  description: Whether TLS is on.
  returned: when the group exists
  type: bool
  sample: true
auth_token_enabled:
  description: Whether clients must send an AUTH token.
  returned: when the group exists
  type: bool
  sample: true
at_rest_encryption_enabled:
  description: Whether data at rest is encrypted.
  returned: when the group exists
  type: bool
  sample: true
endpoint:
  description:
    - The endpoint clients should use, the configuration endpoint in cluster mode and the
      primary endpoint otherwise; null while AWS has not assigned it yet.
  returned: when the group exists
  type: dict
  contains:
    address:
      description: The DNS name.
      type: str
      returned: always
      sample: clustercfg.cachestack.abc123.use1.cache.amazonaws.com
    port:
      description: The port.
      type: int
      returned: always
      sample: 6379
configuration_endpoint:
  description: The configuration endpoint of a cluster-mode group (null without cluster mode).
  returned: when the group exists
  type: dict
  contains:
    address:
      description: The DNS name.
      type: str
      returned: always
      sample: clustercfg.cachestack.abc123.use1.cache.amazonaws.com
    port:
      description: The port.
      type: int
      returned: always
      sample: 6379
primary_endpoint:
  description: The primary endpoint of a group without cluster mode (null in cluster mode).
  returned: when the group exists
  type: dict
  contains:
    address:
      description: The DNS name.
      type: str
      returned: always
      sample: master.cachestack.abc123.use1.cache.amazonaws.com
    port:
      description: The port.
      type: int
      returned: always
      sample: 6379
reader_endpoint:
  description:
    - The reader endpoint of a group without cluster mode (null in cluster mode, and when
      AWS does not report one).
  returned: when the group exists
  type: dict
  contains:
    address:
      description: The DNS name.
      type: str
      returned: always
      sample: replica.cachestack.abc123.use1.cache.amazonaws.com
    port:
      description: The port.
      type: int
      returned: always
      sample: 6379
tags:
  description:
    - The group's tags, read from AWS when the group is available (RV(tags_read) is true).
    - AWS lists tags only for an available group. When the group is not available (for
      example right after a create with O(wait=false)), these are the tags the task asked
      for instead, the ones sent with the create or (for an existing group) O(tags), and
      RV(tags_read) is false.
    - Not returned when the group is not available and the task gave no O(tags) (for
      example while it is being deleted), because the module does not know them.
  returned: when the group exists, see the description
  type: dict
  sample: {"Stack": "cachestack"}
tags_read:
  description:
    - Whether RV(tags) was read from AWS. False when the group was not available and the
      module did not wait for it; then O(tags) of an existing group were not compared or
      changed, and a warning names the group's status.
  returned: when the group exists
  type: bool
  sample: true
replication_group:
  description:
    - The group as C(DescribeReplicationGroups) returns it, in snake_case.
  returned: when the group exists
  type: dict
  sample:
    replication_group_id: cachestack
    description: cachestack cache
    status: available
    cluster_enabled: true
    cluster_mode: enabled
    member_clusters: ["cachestack-0001-001", "cachestack-0001-002"]
    node_groups:
      - node_group_id: "0001"
        status: available
        slots: 0-16383
        node_group_members:
          - cache_cluster_id: cachestack-0001-001
            cache_node_id: "0001"
            preferred_availability_zone: us-east-1a
    configuration_endpoint:
      address: clustercfg.cachestack.abc123.use1.cache.amazonaws.com
      port: 6379
    automatic_failover: enabled
    multi_az: enabled
    snapshot_retention_limit: 1
    snapshot_window: 05:00-06:00
    transit_encryption_enabled: true
    transit_encryption_mode: required
    auth_token_enabled: true
    at_rest_encryption_enabled: true
    cache_node_type: cache.t4g.micro
    engine: valkey
    arn: arn:aws:elasticache:us-east-1:123456789012:replicationgroup:cachestack
"""

try:  # noqa: SIM105 - amazon.aws's idiom: AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass

import time
from typing import Any

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)
from ansible_collections.cachestack.aws.plugins.module_utils import _elasticache as plan
from ansible_collections.cachestack.aws.plugins.module_utils import (
    _elasticache_engines as engines,
)

# Seconds between two DescribeReplicationGroups polls of a wait (the unit tests lower it).
WAIT_DELAY: float = 15

# The resize operations: the shard change goes first, the replica changes after it.
SHARDS = "ModifyReplicationGroupShardConfiguration"
REPLICAS = ("IncreaseReplicaCount", "DecreaseReplicaCount")


class ReplicationGroupManager:
    """Read the group, compare it with the options, then create, change or delete it."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        # A copy: the parameter group AWS's defaults fill in is planned, not echoed back.
        self.params = dict(module.params)
        self.group_id = module.params["replication_group_id"]
        self.client = module.client("elasticache", retry_decorator=AWSRetry.jittered_backoff())
        self.changed = False
        self.actions: list[str] = []
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        # The group's tags as this run knows them, and whether they came from AWS: AWS lists
        # tags only for an available group, otherwise they are the ones the task asked for.
        self.tags: dict[str, str] | None = None
        self.tags_read = False

    # Calling AWS

    def _call(
        self, operation: str, failure: str, absent: tuple[str, ...] = (), **kwargs: Any
    ) -> dict[str, Any] | None:
        """Make one ElastiCache API call (retried by AWSRetry) and return its answer.

        The one place where a botocore error becomes fail_json_aws, with `failure` as the
        message. An error whose code is in `absent` (what was asked about does not exist)
        returns None instead.
        """
        method = getattr(self.client, plan_method_name(operation))
        try:
            return method(aws_retry=True, **kwargs)
        except is_boto3_error_code(absent):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=failure)
        return None  # not reached: fail_json_aws exits

    # Reading

    def describe(self) -> dict[str, Any] | None:
        answer = self._call(
            "DescribeReplicationGroups",
            f"Failed to describe replication group {self.group_id}",
            absent=("ReplicationGroupNotFoundFault",),
            ReplicationGroupId=self.group_id,
        )
        groups = answer["ReplicationGroups"] if answer is not None else None
        return groups[0] if groups else None

    def describe_member(self, group: dict[str, Any]) -> dict[str, Any] | None:
        """Describe one member cache cluster: it carries engine version, groups and windows."""
        members = group.get("MemberClusters") or []
        if not members:
            return None
        answer = self._call(
            "DescribeCacheClusters",
            f"Failed to describe cache cluster {members[0]}",
            absent=("CacheClusterNotFound",),
            CacheClusterId=members[0],
            ShowCacheNodeInfo=False,
        )
        clusters = answer["CacheClusters"] if answer is not None else None
        return clusters[0] if clusters else None

    def describe_tags(self, group: dict[str, Any]) -> dict[str, str]:
        tag_list = self._call(
            "ListTagsForResource",
            f"Failed to list tags of {self.group_id}",
            ResourceName=group["ARN"],
        )
        return boto3_tag_list_to_ansible_dict(tag_list.get("TagList", []))

    # Waiting

    def wait_for(self, target: str) -> dict[str, Any] | None:
        """Poll the group until it is `target` (see plan.wait_outcome); return the last read.

        Our own loop rather than botocore's waiters: ReplicationGroupAvailable waits through
        create-failed until the timeout. A status from which the group cannot get there
        stops the wait at once with the reason.
        """
        timeout = self.params["wait_timeout"]
        deadline = time.monotonic() + timeout
        # Bounded twice: by the clock and by the number of polls the timeout allows.
        polls = int(timeout // WAIT_DELAY) + 2 if WAIT_DELAY > 0 else 1000
        group = None
        for _poll in range(polls):
            group = self.describe()
            outcome, message = plan.wait_outcome(target, self.group_id, group)
            if outcome == "done":
                return group
            if outcome == "fail":
                self.module.fail_json(msg=message, actions=self.actions, changed=self.changed)
            if time.monotonic() + WAIT_DELAY > deadline:
                break
            time.sleep(WAIT_DELAY)
        status = (group or {}).get("Status")
        self.module.fail_json(
            msg=f"Timed out after {timeout}s waiting for {self.group_id} to be {target}: "
            f"its status is still {status}",
            actions=self.actions,
            changed=self.changed,
        )
        return group  # not reached: fail_json exits

    def wait_available(self) -> dict[str, Any]:
        return self.wait_for("available") or {}

    # Acting

    def call(self, operation: str, summary: str, request: dict[str, Any]) -> bool:
        """Record the call and make it unless in check mode; return True (it changes)."""
        self.actions.append(summary)
        self.changed = True
        if self.module.check_mode:
            return True
        self._call(operation, f"{operation} failed for {self.group_id}", **request)
        return True

    def ensure_present(self) -> dict[str, Any]:
        group = self.describe()
        if group is None:
            return self.create()
        status = group.get("Status")
        if status in ("deleting", "deleted"):
            # The id is taken until AWS has finished deleting: wait for that, then create.
            if self.module.check_mode:
                return self.create()
            if not self.params["wait"]:
                self.module.fail_json(
                    msg=f"Replication group {self.group_id} is still being deleted: run again "
                    "once it is gone, or with wait=true to wait for that and create it"
                )
            self.wait_for("gone")
            return self.create()
        if status in plan.NEVER_AVAILABLE:
            # create-failed: nothing but a delete helps, whatever the options or wait say.
            self.module.fail_json(
                msg=f"{self.group_id} is {status}: {plan.NEVER_AVAILABLE[status]}"
            )

        steps = self.plan_steps(group)
        if not self.module.check_mode and status != "available" and (steps or self.params["wait"]):
            # AWS refuses every change (and the tag calls) until the group is available, and
            # sizes read mid-change mislead: plan again from the settled group.
            group = self.wait_available()
            steps = self.plan_steps(group)

        # Tags first: after a change the group is modifying and AWS would refuse them.
        if group.get("Status") == "available":
            if self.params["tags"] is not None:
                self.ensure_tags(group)
        elif self.params["tags"] is not None:
            # Only reached without waiting (wait=false, or check mode).
            self.tags = {k: str(v) for k, v in self.params["tags"].items()}
            self.module.warn(
                f"The tags of {self.group_id} were not compared because the group is "
                f"{group.get('Status')} (AWS lists and changes tags only for an available "
                "group): run again with wait=true to compare them"
            )

        pending = list(steps)
        settled = True  # the group is available for the first step
        while pending:
            operation, summary, request = pending.pop(0)
            if not settled and not self.module.check_mode:
                self.wait_available()
            self.call(operation, summary, request)
            settled = False
            if operation == SHARDS and not self.module.check_mode:
                added = request["NodeGroupCount"] > len(plan.node_group_replicas(group))
                replica_steps = [step for step in pending if step[0] in REPLICAS]
                if replica_steps or (
                    added and self.params.get("replicas_per_node_group") is not None
                ):
                    # The shards AWS added exist only now (with the smallest shard's size and
                    # ids of AWS's choosing): plan the replica calls again on the new shape.
                    group = self.wait_available()
                    settled = True
                    rest = [step for step in pending if step[0] not in REPLICAS]
                    pending = [*self.replica_steps(group, None), *rest]

        if self.module.check_mode:
            return group
        if self.params["wait"]:
            return self.wait_available()
        return self.describe() or group

    def plan_steps(self, group: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        """Compare the group with the options; return (operation, summary, request) steps."""
        member = self.describe_member(group)
        current = plan.current_state(group, member)
        self.resolve_parameter_group(current)
        errors = plan.validate(self.params, current)
        if errors:
            self.module.fail_json(msg="; ".join(errors))
        self.before = plan.diff_view(current)
        self.after = plan.diff_view(plan.desired_state(self.params, current))

        shards = plan.plan_shards(self.params, group)
        modify, _modified = plan.plan_modify(self.params, current, self.group_id)

        steps: list[tuple[str, str, dict[str, Any]]] = []
        if shards:
            steps.append(
                (
                    "ModifyReplicationGroupShardConfiguration",
                    "ModifyReplicationGroupShardConfiguration"
                    f" NodeGroupCount={shards['NodeGroupCount']}",
                    shards,
                )
            )
        steps.extend(self.replica_steps(group, shards))
        if modify:
            summary = "ModifyReplicationGroup " + ",".join(
                key
                for key in modify
                if key not in ("ReplicationGroupId", "ApplyImmediately", "AuthToken")
            )
            step = ("ModifyReplicationGroup", summary, modify)
            # Failover must be off before the last replica goes.
            if modify.get("AutomaticFailoverEnabled") is False:
                steps.insert(0, step)
            else:
                steps.append(step)
        return steps

    def replica_steps(
        self, group: dict[str, Any], shards: dict[str, Any] | None
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """The replica calls (operation, summary, request), after the shard request if any."""
        steps = []
        for operation, request in plan.plan_replicas(self.params, group, shards):
            count = request.get("NewReplicaCount")
            detail = (
                f"NewReplicaCount={count}"
                if count is not None
                else "ReplicaConfiguration="
                + ",".join(
                    f"{item['NodeGroupId']}:{item['NewReplicaCount']}"
                    for item in request["ReplicaConfiguration"]
                )
            )
            steps.append((operation, f"{operation} {detail}", request))
        return steps

    def ensure_tags(self, group: dict[str, Any]) -> None:
        current = self.describe_tags(group)
        to_set, to_unset = compare_aws_tags(current, self.params["tags"], self.params["purge_tags"])
        if to_unset:
            self.call(
                "RemoveTagsFromResource",
                "RemoveTagsFromResource " + ",".join(sorted(to_unset)),
                {"ResourceName": group["ARN"], "TagKeys": to_unset},
            )
        if to_set:
            self.call(
                "AddTagsToResource",
                "AddTagsToResource " + ",".join(sorted(to_set)),
                {
                    "ResourceName": group["ARN"],
                    "Tags": [{"Key": k, "Value": str(v)} for k, v in to_set.items()],
                },
            )
        after_tags = dict(current)
        for key in to_unset:
            after_tags.pop(key, None)
        after_tags.update({k: str(v) for k, v in to_set.items()})
        self.before["tags"] = current
        self.after["tags"] = after_tags
        # Check mode returns the group as it is, so its tags as they are too.
        self.tags = current if self.module.check_mode else after_tags
        self.tags_read = True

    def resolve_parameter_group(self, current: dict[str, Any] | None) -> None:
        """Fill in the parameter group AWS's defaults give the engine, version and cluster
        mode when the task names none (see engines.resolve_parameter_group), or fail."""
        asked = dict(self.module.params)
        name, errors = engines.resolve_parameter_group(asked, current)
        if errors:
            self.module.fail_json(msg="; ".join(errors))
        self.params["cache_parameter_group_name"] = name

    def create(self) -> dict[str, Any]:
        self.resolve_parameter_group(None)
        errors = plan.validate(self.params, None)
        if errors:
            self.module.fail_json(msg="; ".join(errors))
        request = plan.build_create_request(self.params, self.params["tags"])
        after = {
            name: self.params.get(name)
            for name in plan.COMPARED
            if name != "auth_token_enabled" and self.params.get(name) is not None
        }
        if self.params.get("auth_token"):
            after["auth_token_enabled"] = True
        if self.params["tags"] is not None:
            after["tags"] = {k: str(v) for k, v in self.params["tags"].items()}
        self.after = after
        # The group has exactly the tags sent with the create (none when none were asked).
        self.tags = dict(after.get("tags") or {})
        self.call("CreateReplicationGroup", "CreateReplicationGroup", request)
        if self.module.check_mode:
            return {}
        if self.params["wait"]:
            return self.wait_available()
        return self.describe() or {}

    def ensure_absent(self) -> dict[str, Any]:
        group = self.describe()
        if group is None:
            return {}
        self.before = plan.diff_view(plan.current_state(group, None))
        if group.get("Status") not in ("deleting", "deleted"):
            request: dict[str, Any] = {"ReplicationGroupId": self.group_id}
            if self.params.get("final_snapshot_identifier"):
                request["FinalSnapshotIdentifier"] = self.params["final_snapshot_identifier"]
            if not self.module.check_mode and group.get("Status") not in (
                "available",
                "create-failed",
            ):
                # AWS refuses DeleteReplicationGroup (InvalidReplicationGroupState) while the
                # group is creating, modifying or snapshotting: wait until it can be deleted,
                # even with wait=false (which is about waiting for the delete to finish).
                group = self.wait_for("deletable")
            if group is None or group.get("Status") in ("deleting", "deleted"):
                # Gone, or someone else deleted it while we waited.
                return group or {}
            self.call("DeleteReplicationGroup", "DeleteReplicationGroup", request)
        if self.module.check_mode:
            return group
        if self.params["wait"]:
            self.wait_for("gone")
            return {}
        return self.describe() or {}

    # Result

    def result(self, group: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {
            "changed": self.changed,
            "replication_group_id": self.group_id,
            "actions": self.actions,
        }
        if self.module._diff:
            result["diff"] = {"before": self.before, "after": self.after}
        if not group:
            return result
        status = group.get("Status")
        member = self.describe_member(group) if status not in ("deleting", "deleted") else None
        state = plan.current_state(group, member)
        if not self.tags_read and status == "available" and group.get("ARN"):
            self.tags = self.describe_tags(group)
            self.tags_read = True
        snake = camel_dict_to_snake_dict(group, ignore_list=["Tags"])
        if self.tags is not None:
            snake["tags"] = self.tags
            result["tags"] = self.tags
        result["tags_read"] = self.tags_read
        result.update(
            {
                "status": group.get("Status"),
                "arn": group.get("ARN"),
                "engine": state["engine"],
                "engine_version": state["engine_version"],
                "cluster_mode": state["cluster_mode"],
                "cluster_enabled": bool(group.get("ClusterEnabled")),
                "num_node_groups": state["num_node_groups"],
                "replicas_per_node_group": state["replicas_per_node_group"],
                "transit_encryption_enabled": bool(group.get("TransitEncryptionEnabled")),
                "auth_token_enabled": bool(group.get("AuthTokenEnabled")),
                "at_rest_encryption_enabled": bool(group.get("AtRestEncryptionEnabled")),
                "replication_group": snake,
            }
        )
        result.update(plan.endpoints(group))
        return result


def plan_method_name(operation: str) -> str:
    """CreateReplicationGroup -> create_replication_group (the boto3 client method)."""
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in operation).lstrip("_")


def argument_spec() -> dict[str, Any]:
    """The module's options (also used by the unit tests for defaults)."""
    return dict(
        replication_group_id=dict(type="str", required=True, aliases=["name"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        description=dict(type="str"),
        engine=dict(type="str", choices=["redis", "valkey"]),
        engine_version=dict(type="str"),
        cache_node_type=dict(type="str"),
        cluster_mode=dict(type="str", choices=["enabled", "disabled", "compatible"]),
        num_node_groups=dict(type="int"),
        replicas_per_node_group=dict(type="int"),
        automatic_failover_enabled=dict(type="bool", aliases=["automatic_failover"]),
        multi_az_enabled=dict(type="bool", aliases=["multi_az"]),
        transit_encryption_enabled=dict(type="bool"),
        transit_encryption_mode=dict(type="str", choices=["preferred", "required"]),
        auth_token=dict(type="str", no_log=True),
        auth_token_update_strategy=dict(type="str", choices=["SET", "ROTATE"], no_log=False),
        at_rest_encryption_enabled=dict(type="bool"),
        kms_key_id=dict(type="str", no_log=False),
        port=dict(type="int"),
        cache_parameter_group_name=dict(type="str"),
        cache_subnet_group_name=dict(type="str"),
        security_group_ids=dict(type="list", elements="str"),
        snapshot_retention_limit=dict(type="int"),
        snapshot_window=dict(type="str"),
        preferred_maintenance_window=dict(type="str"),
        auto_minor_version_upgrade=dict(type="bool"),
        apply_immediately=dict(type="bool", default=False),
        final_snapshot_identifier=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
    )


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    manager = ReplicationGroupManager(module)
    if module.params["state"] == "present":
        group = manager.ensure_present()
    else:
        group = manager.ensure_absent()
    module.exit_json(**manager.result(group))


if __name__ == "__main__":
    main()
