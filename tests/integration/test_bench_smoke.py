"""A tiny run of every benchmark, so `make bench` keeps working (the figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubescim_dev.controlplane import REPO_ROOT


@pytest.mark.slow
def test_every_benchmark_runs_at_smoke_size(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    for section in ("write_path", "read_path", "operator", "okta", "memory", "peer", "access", "storage"):
        assert section in results
    assert results["machine_start"]["cores"] >= 1
    levels = results["write_path"]["levels"]
    assert set(levels) == {"1", "8", "32"}
    assert all(level["gateway_post_users"]["throughput_per_s"] > 0 for level in levels.values())
    assert all(set(level["ratio_by_order"]) == {"direct_first"} for level in levels.values())  # one repeat
    assert results["okta"]["initial"]["result"] == "Succeeded"
    assert results["okta"]["no_drift"]["kubernetes_writes"] == 0
    assert results["okta"]["delta_no_drift"]["kubernetes_writes"] == 0
    assert results["okta"]["delta_50_changes"]["changes_repaired"] == 50
    assert results["storage"]["json_bytes_per_user"] > 1000  # etcd's figure moves with compaction: not judged
    assert "etcd_in_use_bytes_per_user" in results["storage"]
    assert results["operator"]["propagation"]["samples"] > 0
    assert results["access"]["deactivation_to_denied"]["member"]["samples"] > 0
    assert results["access"]["rule_edit"]["revoke_all"]["objects_changed"] > 0
    report = (tmp_path / "latest.md").read_text()
    for heading in (
        "SCIM write path",
        "Read path",
        "Real-time propagation",
        "Mass change",
        "Okta reconciliation",
        "Memory and startup",
        "Peer",
        "Access: offboarding reaches the authorizer",
        "Storage: one user in etcd",
    ):
        assert heading in report
