"""The benchmark's per-defect shapely loop is an independent implementation of the same route:
on a sample it must agree with the composed map exactly (kept set) and to a micrometre."""

from benchmarks.bench_tracking import run


def test_composed_map_agrees_with_the_event_by_event_loop() -> None:
    result = run(n=20_000, loop_n=2_000, repeats=1)
    assert result["loop_agrees_on_kept"] is True
    assert result["loop_max_abs_diff_mm"] < 1e-3
    assert 0 < result["kept_in_C2"] < 20_000
