"""FileMatcher: which names are delivered, and as what."""

from __future__ import annotations

from pathlib import Path

import pytest

from exportsync.matcher import FileMatcher

ROOT = Path("/home/alice/Exports")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("report.csv", "csv"),
        ("REPORT.CSV", "csv"),  # Windows-style exporters: matching is case-insensitive
        ("x.session.json", "session"),  # session globs are tested before csv globs
        ("X.Session.JSON", "session"),
        ("résumé 2024 ü.csv", "csv"),
        ("notes.txt", None),
        ("report.csv.bak", None),
        (".report.csv.Ab12Cd", None),  # rsync temp name
        (".report.csv", None),
        ("report.csv.tmp", None),
        ("report.TMP", None),
        ("report.csv.part", None),
        ("report.csv~", None),
        ("~$report.csv", None),  # an office suite's owner-lock file beside report.csv
        ("~$Report.Session.JSON", None),
    ],
)
def test_classify_by_name(name: str, kind: str | None) -> None:
    assert FileMatcher().classify(ROOT, ROOT / name) == kind


def test_ignore_globs_win_over_csv_globs() -> None:
    matcher = FileMatcher(csv_globs=("*",), ignore_globs=("draft-*",))
    assert matcher.classify(ROOT, ROOT / "draft-1.csv") is None
    assert matcher.classify(ROOT, ROOT / "final.csv") == "csv"


def test_session_first_even_when_csv_glob_matches_everything() -> None:
    matcher = FileMatcher(csv_globs=("*",))
    assert matcher.classify(ROOT, ROOT / "a.session.json") == "session"


def test_non_recursive_matches_direct_children_only() -> None:
    matcher = FileMatcher()
    assert matcher.classify(ROOT, ROOT / "sub" / "a.csv") is None
    assert not matcher.descend(ROOT, ROOT / "sub")


def test_recursive_matches_below_but_never_in_sent_or_ignored_dirs() -> None:
    matcher = FileMatcher(recursive=True)
    assert matcher.classify(ROOT, ROOT / "2024" / "jan" / "a.csv") == "csv"
    assert matcher.classify(ROOT, ROOT / "sent" / "a.csv") is None
    assert matcher.classify(ROOT, ROOT / "sent" / "deeper" / "a.csv") is None
    assert matcher.classify(ROOT, ROOT / ".git" / "a.csv") is None
    assert matcher.descend(ROOT, ROOT / "2024")
    assert not matcher.descend(ROOT, ROOT / "sent")
    assert not matcher.descend(ROOT, ROOT / ".Trash")


def test_a_file_named_sent_csv_at_top_level_is_still_matched() -> None:
    assert FileMatcher(recursive=True).classify(ROOT, ROOT / "sent.csv") == "csv"


@pytest.mark.parametrize(
    "path",
    [
        Path("/home/alice/Other/a.csv"),
        Path("/home/alice/Exports/../Other/a.csv"),
        Path("/home/alice/ExportsX/a.csv"),
        ROOT,
    ],
)
def test_paths_outside_the_root_never_match(path: Path) -> None:
    assert FileMatcher(recursive=True).classify(ROOT, path) is None


def test_lists_from_config_become_tuples() -> None:
    matcher = FileMatcher(csv_globs=["*.csv"], ignore_globs=[".*"])  # type: ignore[arg-type]
    assert matcher.csv_globs == ("*.csv",)
    assert hash(matcher) == hash(FileMatcher(csv_globs=("*.csv",), ignore_globs=(".*",)))


def test_the_daemons_private_names_never_match_whatever_the_globs() -> None:
    matcher = FileMatcher(csv_globs=("*",), ignore_globs=())
    root = Path("/export")
    assert matcher.classify(root, root / ".exportsync-1a2b3c-report.csv") is None
    assert matcher.classify(root, root / "report.csv") == "csv"
