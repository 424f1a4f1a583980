"""Read a Prometheus /metrics endpoint over HTTP into {(name, labels): value}."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "scrape", "series"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 -- a loopback test URL
        text = answer.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of one sample in `scrape`'s result."""
    return name, tuple(sorted(labels.items()))
