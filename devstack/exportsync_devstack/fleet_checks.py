"""What the fleet checks once everything settled: isolation, plans, loss; and its report line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .fleet_plan import FleetDaemon

__all__ = ["FleetReport", "Landed", "aws_client", "check", "landed"]

# What is in the backend: {(user segment, sha256)} objects, {(user_id, timestamp)} items.
Landed = tuple[set[tuple[str, str]], set[tuple[str, str]]]


@dataclass
class FleetReport:
    daemons: int
    requests: int = 0
    files: int = 0
    refused: int = 0
    lost: int = 0
    forged: int = 0
    problems: list[str] = field(default_factory=list)
    throughput: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.refused == 0 and self.lost == 0

    def summary(self) -> str:
        isolation = "ok" if not any(p.startswith("isolation") for p in self.problems) else "BROKEN"
        return (
            f"fleet: {self.daemons} daemons, {self.requests} requests, {self.files} files, "
            f"refused {self.refused}, lost {self.lost}, isolation {isolation}"
        )


def aws_client(info: dict[str, Any], service: str) -> Any:
    import boto3  # noqa: PLC0415 -- heavy, and only needed once the devstack is up

    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 -- moto's dummy credential
        region_name=info["region"],
    ).client(cast(Any, service), endpoint_url=info["aws_endpoint"])


def landed(info: dict[str, Any]) -> Landed:
    """Every object and every session item in the devstack's bucket and table."""
    objects: set[tuple[str, str]] = set()
    s3 = aws_client(info, "s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=info["bucket"]):
        for entry in page.get("Contents", []):
            parts = entry["Key"].split("/")
            objects.add((parts[1], parts[2]) if len(parts) == 4 else (entry["Key"], ""))
    items: set[tuple[str, str]] = set()
    dynamodb = aws_client(info, "dynamodb")
    for page in dynamodb.get_paginator("scan").paginate(TableName=info["table"]):
        for item in page.get("Items", []):
            items.add((item["user_id"]["S"], item["timestamp"]["S"]))
    return objects, items


def check(
    report: FleetReport,
    daemons: list[FleetDaemon],
    found: Landed,
    statuses: dict[str, dict[str, Any]],
    by_key: dict[str, dict[str, int]],
) -> None:
    """Add to `report`: isolation problems, lost items, refusals of the daemons' keys."""
    owners = {d.user: d for d in daemons}
    objects, items = found
    for user, digest in sorted(objects):
        if user not in owners or digest not in owners[user].objects:
            report.problems.append(f"isolation: object uploads/{user}/{digest} is not {user}'s")
    for user, stamp in sorted(items):
        if user not in owners or stamp not in owners[user].sessions:
            report.problems.append(f"isolation: session {user}/{stamp} was not written by {user}")
    for d in daemons:
        report.lost += sum((d.user, digest) not in objects for digest in d.objects)
        report.lost += sum((d.user, stamp) not in items for stamp in d.sessions)
        failed = statuses.get(d.user, {}).get("failed", [])
        forged = [f for f in failed if Path(f["path"]).name == d.forged_file]
        report.lost += len(failed) - len(forged)
        if d.forged_file is not None:
            report.forged += 1
            if not (forged and "user_mismatch" in forged[0]["reason"]):
                report.problems.append(f"isolation: the session {d.user} forged was not refused")
        counts = by_key.get(d.user, {})
        refused = {k: counts.get(k, 0) for k in ("throttled", "quota_exceeded", "forbidden")}
        if any(refused.values()):
            report.refused += sum(refused.values())
            report.problems.append(f"plan: {d.user} was refused {refused}")
