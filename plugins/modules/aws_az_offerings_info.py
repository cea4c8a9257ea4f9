#!/usr/bin/python

# Copyright: cachestack.aws contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: aws_az_offerings_info
version_added: 0.1.0
short_description: Find the availability zones that offer an EC2 instance type and an RDS class
description:
  - Lists the region's available availability zones and keeps those that offer every
    EC2 instance type in O(instance_types) (C(DescribeInstanceTypeOfferings)) and, when
    O(db_instance_class) is set, the RDS instance class for O(db_engine) and
    O(db_engine_version) in a VPC (C(DescribeOrderableDBInstanceOptions)).
  - Not every zone offers every type (a t3.micro is not sold in every zone of us-east-1),
    and RunInstances or CreateDBInstance in such a zone fails after the network was built.
  - ElastiCache has no API that lists node types by zone; a cache subnet group in zones
    without the node type fails at CreateReplicationGroup.
author:
  - cachestack maintainers (@cachestack)
options:
  instance_types:
    description:
      - EC2 instance types every returned zone must offer.
    type: list
    elements: str
    default: []
  db_instance_class:
    description:
      - RDS instance class every returned zone must offer (empty, not checked).
    type: str
    default: ""
  db_engine:
    description:
      - RDS engine of O(db_instance_class).
    type: str
    default: postgres
  db_engine_version:
    description:
      - RDS engine version; a major version (V(16)) matches each of its minor versions.
    type: str
    default: ""
  min_zones:
    description:
      - The least number of zones that must offer everything; fewer is an error that says
        which zones offer each resource.
    type: int
    default: 1
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode changes nothing in what it does.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
"""

EXAMPLES = r"""
- name: Find two zones that offer the web instance and the database
  cachestack.aws.aws_az_offerings_info:
    instance_types: [t3.micro]
    db_instance_class: db.t3.micro
    db_engine_version: "16"
    min_zones: 2
  register: zones
"""

RETURN = r"""
zones:
  description: The available zones that offer everything asked, sorted by name.
  returned: always
  type: list
  elements: str
  sample: ["us-east-1a", "us-east-1b"]
available_zones:
  description: Every available zone of the region, sorted by name.
  returned: always
  type: list
  elements: str
  sample: ["us-east-1a", "us-east-1b", "us-east-1c"]
offered:
  description: For each resource asked (C(ec2:TYPE), C(rds:CLASS)), the zones that offer it.
  returned: always
  type: dict
  sample: {"ec2:t3.micro": ["us-east-1a", "us-east-1b"]}
"""

from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.cachestack.aws.plugins.module_utils import _az_offerings as logic

try:  # noqa: SIM105 - amazon.aws's idiom: AnsibleAWSModule reports a missing botocore
    import botocore
except ImportError:
    pass


def available_zones(ec2: Any) -> set[str]:
    answer = ec2.describe_availability_zones(
        aws_retry=True,
        Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ],
    )
    return {zone["ZoneName"] for zone in answer["AvailabilityZones"]}


def instance_type_zones(ec2: Any, instance_type: str) -> set[str]:
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    offerings = paginator.paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}],
    ).build_full_result()["InstanceTypeOfferings"]
    return logic.ec2_zones(offerings)


def db_class_zones(rds: Any, engine: str, engine_version: str, db_class: str) -> set[str]:
    # EngineVersion filters on an exact version, so a major version is matched here.
    paginator = rds.get_paginator("describe_orderable_db_instance_options")
    options = paginator.paginate(
        Engine=engine, DBInstanceClass=db_class, Vpc=True
    ).build_full_result()["OrderableDBInstanceOptions"]
    return logic.rds_zones(options, engine_version)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            instance_types=dict(type="list", elements="str", default=[]),
            db_instance_class=dict(type="str", default=""),
            db_engine=dict(type="str", default="postgres"),
            db_engine_version=dict(type="str", default=""),
            min_zones=dict(type="int", default=1),
        ),
        supports_check_mode=True,
    )
    params = module.params
    retry = AWSRetry.jittered_backoff()
    ec2 = module.client("ec2", retry_decorator=retry)
    offered: dict[str, set[str]] = {}
    try:
        available = available_zones(ec2)
        for instance_type in params["instance_types"]:
            offered[f"ec2:{instance_type}"] = instance_type_zones(ec2, instance_type)
        if params["db_instance_class"]:
            rds = module.client("rds", retry_decorator=retry)
            offered[f"rds:{params['db_instance_class']}"] = db_class_zones(
                rds, params["db_engine"], params["db_engine_version"], params["db_instance_class"]
            )
    except is_boto3_error_code("UnauthorizedOperation") as e:
        module.fail_json_aws(e, msg="Not allowed to list the zones' offerings")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to list the availability zones' offerings")

    result = dict(
        zones=logic.common_zones(available, offered),
        available_zones=sorted(available),
        offered={resource: sorted(zones) for resource, zones in offered.items()},
    )
    problem = logic.shortfall(available, offered, params["min_zones"])
    if problem:
        module.fail_json(msg=problem, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
