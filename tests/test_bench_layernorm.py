"""The bench's layer-norm Jacobians: both paths timed in the Jacobian group, listed in the Jacobian table
(structure only: no duration is asserted)."""

from bench import report, suite


def test_layernorm_jacobians_are_benched_and_reported():
    cfg = dict(suite.MODES["smoke"])
    rec = suite.Recorder(cfg, log=lambda *a: None)
    suite._bench_jacobians(rec, None, 4, 8)
    impls = {(r["task"], r["impl"]) for r in rec.rows}
    assert {("layernorm jacobians", "reference"), ("layernorm jacobians", "batched")} <= impls
    assert ("layernorm jacobians", "torch") not in impls  # no torch here: no row, not a zero
    ratios = suite.derive(rec.rows)
    machine = suite.machine_info(None)
    text = report.markdown(dict(mode="smoke", machine=machine, rows=rec.rows, ratios=ratios, sweeps={}, targets=[]))
    lines = [line for line in text.splitlines() if "layernorm jacobians" in line]
    assert len(lines) == 1 and lines[0].startswith("| 4-4-4 | 8 | layernorm jacobians |")
    # the Jacobian tasks stay out of the per-architecture table (whose rows have 11 cells)
    assert all(line.count("|") == 9 for line in lines)
