"""The end of a reliability run: the folder's final state against S3, DynamoDB and the spool.

* lost: a good file (or a good session in it) in the folder at the end whose final content is not
  in S3 / DynamoDB;
* duplicated: one content stored under more keys than names ever held it (a file stored twice
  under different keys), or a session whose stored value was never written (stored twice with
  different content);
* bad: a hostile input not `failed` with a non-empty reason, or a name that is no export spooled;
* problems: anything else wrong (items stuck, objects outside the user's prefix or never written,
  a foreign user's session, the API key in a log, a daemon that exited by itself).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from exportsync.errors import SpoolError
from exportsync.spool import Item
from support.chaos import Chaos, sha256
from support.corpus import Hostile
from support.daemon import spool_items
from support.devstack import DevstackInfo, dynamo_items, s3_objects

__all__ = ["Verdict", "judge"]


@dataclass
class Verdict:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.bad or self.problems)

    def all(self) -> list[str]:
        return [
            *(f"lost: {x}" for x in self.lost),
            *(f"duplicated: {x}" for x in self.duplicated),
            *(f"bad input: {x}" for x in self.bad),
            *(f"problem: {x}" for x in self.problems),
        ]


def _latest(items: list[Item]) -> dict[str, Item]:
    """Each path's newest row."""
    out: dict[str, Item] = {}
    for item in sorted(items, key=lambda i: i.id):
        out[str(item.path)] = item
    return out


def _show(item: Item | None) -> str:
    if item is None:
        return "never spooled"
    return f"#{item.id} {item.state} attempts={item.attempts} error={item.last_error!r}"


def _refused(item: Item | None) -> bool:
    return item is not None and item.state == "failed" and bool((item.last_error or "").strip())


def _same(got: dict[str, object] | None, want: dict[str, object]) -> bool:
    return got is not None and {k: got.get(k) for k in want} == want


def judge(
    verdict: Verdict, info: DevstackInfo, base: Path, chaos: Chaos, corpus: list[Hostile]
) -> None:
    """Fill `verdict` from what the run left behind."""
    export = base / "export"
    try:
        items = spool_items(base / "state")
    except SpoolError as exc:
        verdict.problems.append(f"the spool cannot be read at the end: {exc}")
        items = []
    latest = _latest(items)
    objects = s3_objects(info)
    sessions = dynamo_items(info)

    prefix = f"uploads/{info.user_id}/"
    keys_by_sha: dict[str, list[str]] = defaultdict(list)
    for key, data in objects.items():
        if not key.startswith(prefix) or key.count("/") != 3:
            verdict.problems.append(f"object outside {prefix}: {key!r}")
            continue
        sha = key.split("/")[2]
        keys_by_sha[sha].append(key)
        if sha256(data) != sha or data not in chaos.csv_versions | _corpus_csvs(corpus):
            verdict.problems.append(f"object {key!r} holds {len(data)} bytes never written")
    stored: dict[str, dict[str, object]] = {}
    for session in sessions:
        if session.get("user_id") != info.user_id:
            verdict.problems.append(f"session stored for another user: {session}")
            continue
        stored[str(session["timestamp"])] = session

    world = _World(export, latest, dict(keys_by_sha), stored)
    _judge_chaos(verdict, world, chaos)
    _judge_corpus(verdict, world, corpus)
    _judge_duplicates(verdict, chaos, corpus, keys_by_sha, stored)
    verdict.problems += [
        f"stuck: {i.path.name!r} {_show(i)}" for i in items if i.state in ("pending", "sending")
    ]
    verdict.problems += [
        f"failed without a reason: {i.path.name!r} {_show(i)}"
        for i in items
        if i.state == "failed" and not i.last_error
    ]
    logs = "".join(p.read_text(errors="replace") for p in base.glob("daemon-*.log"))
    if info.api_key in logs:
        verdict.problems.append("the API key appears in a daemon log")


def _corpus_csvs(corpus: list[Hostile]) -> set[bytes]:
    return {h.data for h in corpus if h.expect == "delivered" and not h.is_session}


@dataclass(frozen=True)
class _World:
    """What the run left: each path's newest spool row, S3's keys by digest, our sessions."""

    export: Path
    latest: dict[str, Item]
    keys_by_sha: dict[str, list[str]]
    stored: dict[str, dict[str, object]]


def _judge_chaos(verdict: Verdict, world: _World, chaos: Chaos) -> None:
    for name, entry in sorted(chaos.present.items()):
        if entry.kind == "symlink" or (entry.kind == "session" and entry.style != "valid"):
            item = world.latest.get(str(world.export / name))
            if not _refused(item):
                verdict.bad.append(f"{name!r} ({entry.kind} {entry.style}): {_show(item)}")
        elif entry.kind == "csv":
            if entry.sha256 not in world.keys_by_sha:
                verdict.lost.append(f"{name!r}: final CSV ({len(entry.data)} bytes) not in S3")
        else:
            for session in entry.sessions:
                if not _same(world.stored.get(session.timestamp), session.expected()):
                    verdict.lost.append(f"{name!r}: session {session.timestamp} not as written")


def _judge_corpus(verdict: Verdict, world: _World, corpus: list[Hostile]) -> None:
    for entry in corpus:
        item = world.latest.get(str(world.export / entry.name))
        if entry.expect == "failed" and not _refused(item):
            verdict.bad.append(
                f"{entry.kind} {entry.name!r} not failed with a reason: {_show(item)}"
            )
        elif entry.expect == "ignored" and item is not None:
            verdict.bad.append(f"{entry.kind} {entry.name!r} spooled: {_show(item)}")
        elif entry.expect == "delivered":
            if entry.is_session:
                missing = [t for t in entry.timestamps if t not in world.stored]
                if missing:
                    verdict.lost.append(f"{entry.kind} {entry.name!r}: {missing} not stored")
            elif sha256(entry.data) not in world.keys_by_sha:
                verdict.lost.append(f"{entry.kind} {entry.name!r}: not in S3 ({_show(item)})")


def _judge_duplicates(
    verdict: Verdict,
    chaos: Chaos,
    corpus: list[Hostile],
    keys_by_sha: dict[str, list[str]],
    stored: dict[str, dict[str, object]],
) -> None:
    holders: dict[str, set[str]] = defaultdict(set)
    for sha, names in chaos.held.items():
        holders[sha] |= names
    for entry in corpus:
        if entry.expect == "delivered" and not entry.is_session:
            holders[sha256(entry.data)].add(entry.name)
    for sha, keys in keys_by_sha.items():
        if len(keys) > max(1, len(holders.get(sha, ()))):
            verdict.duplicated.append(
                f"{sha[:12]} stored under {len(keys)} keys, held by {sorted(holders[sha])}"
            )
    corpus_days = ("2026-11-26", "2026-11-27")
    for timestamp, got in sorted(stored.items()):
        written = [s.expected() for s in chaos.session_values.get(timestamp, [])]
        if written:
            if not any(_same(got, want) for want in written):
                verdict.duplicated.append(f"session {timestamp} holds values never written: {got}")
        elif not timestamp.startswith(corpus_days):
            verdict.problems.append(f"session {timestamp} was never written: {got}")
