"""`python -m exportsync_devstack.show demo/devstack.json`: what reached S3 and DynamoDB.

Takes the devstack's ready line as `make demo` saves it (without the API key).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exportsync_devstack.show")
    parser.add_argument("info", type=Path, help="the devstack's ready line saved as JSON")
    args = parser.parse_args(argv)
    info = json.loads(args.info.read_text())
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 -- moto on loopback accepts any credentials
        region_name=info["region"],
    )
    s3 = session.client("s3", endpoint_url=info["aws_endpoint"])
    print(f"S3 s3://{info['bucket']}/")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=info["bucket"]):
        for entry in page.get("Contents", []):
            print(f"  {entry['Size']:>10}  {entry['Key']}")
            count += 1
    print(f"  ({count} objects)")
    table = session.resource("dynamodb", endpoint_url=info["aws_endpoint"]).Table(info["table"])
    print(f"DynamoDB {info['table']}")
    items = table.scan().get("Items", [])
    for item in sorted(items, key=lambda i: (str(i["user_id"]), str(i["timestamp"]))):
        print(f"  {json.dumps(item, default=str, sort_keys=True)}")
    print(f"  ({len(items)} items)")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
