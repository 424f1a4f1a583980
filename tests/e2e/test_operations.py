"""Operating a real daemon: `/metrics` and journald priorities, against the devstack on loopback."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.daemon import run_daemon, settled, write_config
from support.devstack import DevstackInfo, wait_for
from support.scrape import scrape, series

CSV = b"when,steps\n2026-11-25,9000\n"


def test_metrics_and_journal_priorities_of_a_real_daemon(
    devstack: DevstackInfo, tmp_path: Path
) -> None:
    config = write_config(tmp_path, devstack, metrics={"listen": "127.0.0.1:0"})
    export = tmp_path / "export"
    (export / "walk.csv").write_bytes(CSV)
    (export / "bad.session.json").write_text('{"timestamp": "2026-11-25T10:00:00Z", "x": NaN}')
    with run_daemon(config, journal=True) as daemon:
        daemon.wait_ready()
        [url] = [e["url"] for e in daemon.events() if e["event"] == "metrics_listening"]
        assert url.startswith("http://127.0.0.1:")
        assert wait_for(lambda: settled(daemon.state_dir, 2), 60), daemon.output()
        samples = scrape(url)
        assert daemon.terminate() == 0
    assert samples[series("exportsync_items", state="delivered")] == 1
    assert samples[series("exportsync_items", state="failed")] == 1
    assert samples[series("exportsync_requests_total", route="batch", outcome="ok")] == 1
    assert samples[series("exportsync_bytes_sent_total")] == len(CSV)
    assert samples[series("exportsync_delivery_seconds_count")] == 1
    assert samples[series("exportsync_quota_used")] == 1
    lines = daemon.log_path.read_text().splitlines()
    priorities = {}
    for line in lines:
        match = re.match(r"<([0-7])>(\{.*\})$", line)
        assert match, line  # every line: a priority, then one JSON object
        priorities[json.loads(match.group(2))["event"]] = int(match.group(1))
    assert priorities["item_delivered"] == 6
    assert priorities["item_failed"] == 4
