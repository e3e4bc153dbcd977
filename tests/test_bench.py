"""The bench runs and reports what it promises (structure only: no duration is asserted here)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import baselines, report, suite


@pytest.fixture(scope="module")
def smoke():
    return suite.run("smoke", log=lambda *a: None)


def test_smoke_measures_both_paths_for_every_task(smoke):
    tasks = {(r["task"], r["impl"]) for r in smoke["rows"] if r["arch"] == "A" and r["dtype"] == "float64"}
    for task in ("forward", "grads", "step", "per-sample grads"):
        assert (task, "reference") in tasks, task
        assert (task, "batched") in tasks, task
    for floor in ("inline-reference", "inline-batched", "gemm-floor"):
        assert ("step", floor) in tasks
    assert {r["dtype"] for r in smoke["rows"] if r["arch"] == "A"} == {"float64", "float32"}


def test_smoke_times_the_cnn_and_its_jacobian_memory(smoke):
    tasks = {r["impl"] for r in smoke["rows"] if r["arch"] == "digits-cnn" and r["task"] == "step"}
    assert {"reference", "batched"} <= tasks
    (mem,) = smoke["cnn_memory"]
    assert mem["arch"] == "digits-cnn" and mem["shape"] == [16 * 64, 64] and mem["nnz"] <= 16 * 64 * 9
    assert mem["sparse_bytes"] < mem["dense_bytes"]
    assert "dense / sparse" in report.markdown(smoke)


def test_timings_are_ordered_and_positive(smoke):
    for r in smoke["rows"]:
        assert 0 < r["min"] <= r["median"] <= r["max"], r
        assert r["repeats"] >= 1 and r["calls_per_repeat"] >= 1


def test_ratios_targets_sweeps_and_machine(smoke):
    step = [e for e in smoke["ratios"] if e["arch"] == "A" and e["dtype"] == "float64" and e["task"] == "step"]
    assert len(step) == 1 and step[0]["speedup"] > 0 and 0 < step[0]["gemm_fraction"]
    assert len(smoke["targets"]) == len(suite.TARGETS)
    assert {(s["sweep"], s["impl"]) for s in smoke["sweeps"]} == {
        ("width", "reference"),
        ("width", "batched"),
        ("N", "reference"),
        ("N", "batched"),
    }
    assert all(np.isfinite(s["slope"]) for s in smoke["sweeps"])
    m = smoke["machine"]
    assert m["cores"] >= 1 and m["blas"] and m["blas_threads"] >= 1


def test_markdown_and_json(smoke, tmp_path):
    text = report.markdown(smoke)
    assert "| arch | N | dtype | task | reference ms | batched ms |" in text
    assert "Machine:" in text and "Targets:" in text
    path = tmp_path / "bench.json"
    report.write_json(smoke, path)
    assert json.loads(path.read_text())["mode"] == "smoke"


def test_slope_of_a_power_law():
    assert suite._slope([1, 2, 4, 8], [3.0, 12.0, 48.0, 192.0]) == pytest.approx(2.0)


def test_inline_floors_agree_with_the_library():
    """The floors do the library's mathematics: one step of each moves the parameters the same way."""
    net, X, y = suite.make_problem([5, 7, 6, 3], 11, np.float64)
    ref, bat = suite._params(net), suite._params(net)
    loss_ref = baselines.inline_reference_step(ref, X, y, 0.1)
    loss_bat = baselines.inline_batched_step(bat, X, y, 0.1)
    loss_lib = net.train_step_batched(X, y, 0.1)
    assert loss_ref == pytest.approx(loss_lib, rel=1e-12, abs=0) and loss_bat == pytest.approx(
        loss_lib, rel=1e-12, abs=0
    )
    for (W1, b1), (W2, b2), layer in zip(ref, bat, net.layers):
        np.testing.assert_allclose(W1, layer.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(W2, layer.W, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b1, layer.b, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b2, layer.b, rtol=1e-12, atol=1e-14)


def test_command_line_smoke(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "## jacobian_nn bench (smoke mode)" in proc.stdout
    assert json.loads(out.read_text())["rows"]
