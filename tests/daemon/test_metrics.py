"""Prometheus metrics: a real scrape over loopback counts a delivered and a failed file."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exportsync.client import BatchRequest
from exportsync.daemon import Daemon
from exportsync.errors import ConfigError, QuotaExhausted, Throttled, TransientError
from exportsync.metrics import MeteredApi, Metrics, MetricsServer, outcome_of, serve_metrics
from exportsync.notify import Notifier
from exportsync.status import read_spool
from support.devstack import wait_for
from support.fake_api import FakeApi
from support.inprocess import fast_config
from support.scrape import Samples, scrape

CSV = b"id,value\n1,2\n"
REPO = Path(__file__).resolve().parents[2]


def scrape_endpoint(endpoint: MetricsServer) -> Samples:
    host, port = endpoint.address
    return scrape(f"http://{host}:{port}/metrics")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Daemon, MetricsServer, Path]]:
    config = fast_config(tmp_path, **{"metrics.listen": "127.0.0.1:0"})
    assert config.metrics.host == "127.0.0.1"
    metrics = Metrics()
    daemon = Daemon(
        config, api=MeteredApi(FakeApi(), metrics), notifier=Notifier(), metrics=metrics
    )
    endpoint = serve_metrics(
        metrics, lambda: read_spool(config), config.metrics.host, config.metrics.port
    )
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        yield daemon, endpoint, tmp_path / "export"
    finally:
        daemon.stop()
        runner.join(10)
        endpoint.close()


def test_a_scrape_counts_a_delivered_and_a_failed_file(
    running: tuple[Daemon, MetricsServer, Path],
) -> None:
    _, endpoint, export = running
    (export / "good.csv").write_bytes(CSV)
    (export / "bad.session.json").write_text('{"timestamp": "2026-01-01T00:00:00Z", "x": NaN}')

    def settled() -> bool:
        now = scrape_endpoint(endpoint)
        return (
            now.get(("exportsync_items", (("state", "delivered"),))) == 1
            and now.get(("exportsync_items", (("state", "failed"),))) == 1
        )

    assert wait_for(settled, 20), scrape_endpoint(endpoint)
    samples = scrape_endpoint(endpoint)
    assert samples[("exportsync_items", (("state", "pending"),))] == 0
    assert samples[("exportsync_requests_total", (("outcome", "ok"), ("route", "batch")))] == 1
    assert samples[("exportsync_files_detected_total", ())] == 2
    assert samples[("exportsync_bytes_sent_total", ())] == len(CSV)
    assert samples[("exportsync_delivery_seconds_count", ())] == 1
    assert samples[("exportsync_delivery_seconds_bucket", (("le", "+Inf"),))] == 1
    assert samples[("exportsync_quota_used", ())] == 1  # the bad session spent no request
    assert samples[("exportsync_quota_limit", ())] == 10
    assert samples[("exportsync_quota_resets_at_seconds", ())] > 0


def test_each_answer_has_its_outcome_label() -> None:
    metrics = Metrics()
    api = MeteredApi(
        FakeApi(script=[Throttled("slow down", status=429), QuotaExhausted("day", status=429)]),
        metrics,
    )
    for _ in range(2):
        with pytest.raises((Throttled, QuotaExhausted)):
            api.batch(BatchRequest(sessions=[b"{}"]))
    api.batch(BatchRequest(sessions=[b"{}"]))
    value = metrics.registry.get_sample_value
    for outcome in ("throttled", "quota_exhausted", "ok"):
        labels = {"route": "batch", "outcome": outcome}
        assert value("exportsync_requests_total", labels) == 1
    assert value("exportsync_bytes_sent_total") == 2  # only the answered request's bytes
    assert outcome_of(TransientError("502", status=502)) == "transient"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9464", "127.0.0.1", 9464),
        (":9100", "127.0.0.1", 9100),
        ("9100", "127.0.0.1", 9100),
        ("0.0.0.0:9464", "0.0.0.0", 9464),  # noqa: S104 -- the address says so
        ("[::1]:9464", "::1", 9464),
    ],
)
def test_listen_addresses(tmp_path: Path, listen: str, host: str, port: int) -> None:
    metrics = fast_config(tmp_path, **{"metrics.listen": listen}).metrics
    assert (metrics.host, metrics.port) == (host, port)


def test_metrics_are_off_by_default_and_a_bad_address_names_the_key(tmp_path: Path) -> None:
    assert fast_config(tmp_path).metrics.host is None
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        fast_config(tmp_path, **{"metrics.listen": "localhost:http"})


def test_the_grafana_dashboard_asks_only_for_served_metrics() -> None:
    """Each series docs/grafana-dashboard.json queries is one the daemon serves."""
    served = {
        "exportsync_items",
        "exportsync_requests_total",
        "exportsync_quota_used",
        "exportsync_quota_limit",
        "exportsync_quota_resets_at_seconds",
        "exportsync_files_detected_total",
        "exportsync_bytes_sent_total",
        "exportsync_delivery_seconds_bucket",
    }
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"exportsync_\w+", expr)}
    assert used == served
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("backlog", "quota", "latency", "failed"):
        assert topic in titles


def _switches(tid: int) -> int:
    """Times the thread gave up the CPU of its own accord (each wake-up from a wait is one)."""
    for line in Path(f"/proc/self/task/{tid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def _asleep(tid: int) -> bool:
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "S"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")
def test_the_endpoint_does_not_wake_while_nobody_scrapes(tmp_path: Path) -> None:
    """The server thread sleeps in one wait without a deadline: over an interval in which a
    polling server (prometheus_client's serve_forever looks every 0.5 s) wakes at least twice,
    it does not wake at all; a scrape wakes it and is answered; close() ends it."""
    config = fast_config(tmp_path)
    endpoint = serve_metrics(Metrics(), lambda: read_spool(config), "127.0.0.1", 0)
    try:
        tid = endpoint.thread.native_id
        assert tid is not None
        assert wait_for(lambda: _asleep(tid), deadline=10.0)
        before = _switches(tid)
        threading.Event().wait(1.2)  # the interval observed, not a wait for something to happen
        assert _switches(tid) == before
        assert "exportsync_items" in {name for name, _ in scrape_endpoint(endpoint)}
        assert _switches(tid) > before
    finally:
        endpoint.close()
    assert not endpoint.thread.is_alive()
