"""bfloat16 training: the layout chosen per CPU, finite gradients, and diverged runs stopped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coilmap.errors import InputError
from detection import mixed_precision
from detection.segmentation import DefectSegmenter
from detection.segmentation.torch_model import ContextAggregationNetwork
from tests.detection.test_segmentation import TINY, _tiles


def test_channels_last_except_dilated_training_without_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    dilated = ContextAggregationNetwork(2, 8, (1, 2), 2)
    plain = torch.nn.Conv2d(3, 4, 3)
    x = torch.zeros(2, 3, 8, 8)  # three channels: with one, both layouts are the same tensor
    channels_last = torch.channels_last
    monkeypatch.setattr(mixed_precision, "cpu_has_amx", lambda: False)
    assert mixed_precision.memory_format(dilated, "bf16") == torch.contiguous_format
    assert mixed_precision.memory_format(dilated, "bf16", training=False) == channels_last
    assert mixed_precision.memory_format(plain, "fp32") == channels_last  # the faster layout in fp32 too
    assert mixed_precision.memory_format(dilated, "fp32") == channels_last
    net = mixed_precision.prepare(plain, "bf16")
    assert net.weight.is_contiguous(memory_format=channels_last) and not net.weight.is_contiguous()
    assert mixed_precision.as_input(x, net).is_contiguous(memory_format=channels_last)
    net = mixed_precision.restore(net)
    assert net.weight.is_contiguous() and mixed_precision.as_input(x, net).is_contiguous()
    monkeypatch.setattr(mixed_precision, "cpu_has_amx", lambda: True)
    assert mixed_precision.memory_format(dilated, "bf16") == channels_last


def test_a_bf16_training_step_of_the_segmenter_network_has_finite_gradients() -> None:
    # The default segmenter's shape (width 24, dilations up to 16): channels-last bfloat16 gave
    # NaN weight gradients for dilations 4 and 8 on an AMD EPYC without AMX (torch 2.13).
    torch.manual_seed(0)
    net = mixed_precision.prepare(ContextAggregationNetwork(5, 24, (1, 2, 4, 8, 16), 4), "bf16")
    with mixed_precision.autocast("bf16"):
        lo = net.low_res_logits(mixed_precision.as_input(torch.randn(4, 1, 128, 128), net))
    lo.float().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_a_diverging_run_stops_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    x, m = _tiles(6, np.random.default_rng(0))

    def nan_loss(*args, **kwargs):  # type: ignore[no-untyped-def]
        return torch.tensor(float("nan"), requires_grad=True), torch.zeros(len(args[1]))

    monkeypatch.setattr(DefectSegmenter, "_loss", staticmethod(nan_loss))
    with pytest.raises(InputError, match=r"training diverged: the loss is nan at step 1 \(precision bf16\)"):
        DefectSegmenter(**TINY, epochs=1, precision="bf16").fit(x, m, classes=["blob", "bar"], n_synthetic=0)


def test_a_bf16_scorer_scores_in_float32_on_a_cpu_without_bfloat16_units(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without avx512_bf16 / amx_bf16 oneDNN only emulates bfloat16: the default anomaly model
    # (bf16 scoring) gave 15.9 tiles/s on an AVX2-only EPYC, far below the 100 of the target.
    from detection.anomaly.draem.scorer import DraemScorer
    from detection.anomaly.ensemble.scorer import EnsembleScorer

    rng = np.random.default_rng(0)
    imgs = [rng.random((40, 48)).astype(np.float32) for _ in range(5)]
    scorer = DraemScorer(input_size=32, base_width=4, steps=1, batch_size=2).fit(imgs[:3], X_val=imgs[3:])
    fp32_maps = scorer.score_maps(imgs[:2])

    monkeypatch.setattr(mixed_precision, "cpu_has_bf16", lambda: False)
    scorer.set_score_precision("bf16")
    assert (scorer.score_precision, scorer.scoring_precision_) == ("bf16", "fp32")
    for a, b in zip(scorer.score_maps(imgs[:2]), fp32_maps, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "no bfloat16 units" in (mixed_precision.slow_bf16_warning("bf16") or "")
    assert mixed_precision.slow_bf16_warning("fp32") is None

    monkeypatch.setattr(mixed_precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(mixed_precision, "bf16_runs_faster", lambda model, example: True)
    scorer.set_score_precision("bf16")
    assert scorer.scoring_precision_ == "bf16" and scorer.scoring_precisions() == ["bf16"]
    bf16_maps = scorer.score_maps(imgs[:2])
    assert not all(np.array_equal(a, b) for a, b in zip(bf16_maps, fp32_maps, strict=True))
    assert mixed_precision.slow_bf16_warning("bf16") is None

    # units, but measured slower than float32 (an Intel Xeon with AVX512-BF16 and no AMX)
    monkeypatch.setattr(mixed_precision, "bf16_runs_faster", lambda model, example: False)
    fast = DraemScorer(input_size=32, base_width=4, steps=1, batch_size=2, seed=1)
    fast.fit(imgs[:3], X_val=imgs[3:])
    fast.scoring_precision_ = "bf16"  # as it would on a CPU where bf16 is faster
    scorer.set_score_precision("bf16")
    assert (scorer.score_precision, scorer.scoring_precision_) == ("bf16", "fp32")
    # what ran is what the figures name: evaluate-anomaly and bench anomaly print this
    both = EnsembleScorer(members=[scorer, fast]).fit(None, X_val=imgs[3:])
    assert both.scoring_precisions() == ["bf16", "fp32"]
    for a, b in zip(scorer.score_maps(imgs[:2]), fp32_maps, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_bf16_probe_times_the_network_once_per_shape_and_thread_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    calls: list[int] = []
    clock = iter(range(1000))

    def fake_clock() -> float:
        calls.append(1)
        return float(next(clock))

    # every timed run takes one tick of the fake clock: bf16 is not faster by the margin
    monkeypatch.setattr(time, "perf_counter", fake_clock)
    monkeypatch.setattr(mixed_precision, "_probed", {})
    net = torch.nn.Conv2d(1, 2, 3).eval()
    assert mixed_precision.bf16_runs_faster(net, torch.zeros(2, 1, 8, 8)) is False
    timed = len(calls)
    assert timed == 16  # two precisions, four runs, a start and an end each
    assert mixed_precision.bf16_runs_faster(net, torch.zeros(2, 1, 8, 8)) is False
    assert len(calls) == timed  # measured once
    mixed_precision._probed[next(iter(mixed_precision._probed))] = {"fp32": 2.0, "bf16": 1.0}
    assert mixed_precision.bf16_runs_faster(net, torch.zeros(2, 1, 8, 8)) is True
    assert mixed_precision.bf16_runs_faster(net, torch.zeros(2, 1, 16, 16)) is False  # another shape
    assert len(calls) == 2 * timed


def test_bf16_training_warns_where_the_network_is_measured_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    net, batch = torch.nn.Conv2d(1, 2, 3).eval(), torch.zeros(8, 1, 8, 8)
    monkeypatch.setattr(mixed_precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(mixed_precision, "_probed", {})
    mixed_precision.precision_seconds(net, batch)
    key = next(iter(mixed_precision._probed))
    mixed_precision._probed[key] = {"fp32": 0.0100, "bf16": 0.0135}  # this Xeon's DRAEM: 0.74 x
    warning = mixed_precision.slow_bf16_warning("bf16", net, batch) or ""
    assert "no faster in bf16" in warning and "13.5 against 10.0 ms for a batch of 8" in warning
    mixed_precision._probed[key] = {"fp32": 0.0148, "bf16": 0.0100}  # the AMD EPYC's: 1.48 x
    assert mixed_precision.slow_bf16_warning("bf16", net, batch) is None
    assert mixed_precision.slow_bf16_warning("fp32", net, batch) is None
    # a batch the network cannot take leaves the error to the training, not to this check
    assert mixed_precision.slow_bf16_warning("bf16", net, torch.zeros(8, 3, 8, 8)) is None


def test_auto_trains_in_whichever_precision_is_measured_faster_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from detection.cli_ensemble import resolve_auto_precision

    net, batch = torch.nn.Conv2d(1, 2, 3).eval(), torch.zeros(8, 1, 8, 8)
    assert mixed_precision.training_precision("bf16", net, batch) == "bf16"  # asked for, kept
    with pytest.raises(InputError, match="precision must be one of"):
        mixed_precision.training_precision("fp16", net, batch)
    monkeypatch.setattr(mixed_precision, "cpu_has_bf16", lambda: False)  # an AVX2-only EPYC
    assert mixed_precision.training_precision("auto", net, batch) == "fp32"
    assert mixed_precision.precision_summary(net, batch) == "no bfloat16 units on this CPU"
    monkeypatch.setattr(mixed_precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(mixed_precision, "_probed", {})
    mixed_precision.precision_seconds(net, batch)
    key = next(iter(mixed_precision._probed))
    mixed_precision._probed[key] = {"fp32": 0.0148, "bf16": 0.0100}  # the AMD EPYC with AVX512-BF16
    assert mixed_precision.training_precision("auto", net, batch) == "bf16"
    assert mixed_precision.precision_summary(net, batch) == "a batch of 8: 14.8 ms fp32, 10.0 ms bf16"
    mixed_precision._probed[key] = {"fp32": 0.0100, "bf16": 0.0135}  # the Xeon without AMX
    assert mixed_precision.training_precision("auto", net, batch) == "fp32"

    # train-ensemble resolves a member's auto once, before the members start side by side
    faster = {"answer": True}
    monkeypatch.setattr(mixed_precision, "bf16_runs_faster", lambda model, example: faster["answer"])
    words = ["--kind", "draem", "--width", "4", "--precision", "auto", "--anomalies", "surface"]
    assert resolve_auto_precision(words) == [*words[:5], "bf16", *words[6:]]
    assert resolve_auto_precision(["--precision=auto", "--crop-px", "64"]) == [
        "--precision=bf16", "--crop-px", "64"]
    faster["answer"] = False
    assert resolve_auto_precision(words)[5] == "fp32"
    asked = ["--kind", "draem", "--precision", "bf16"]
    assert resolve_auto_precision(asked) == asked
    threads = torch.get_num_threads()
    resolve_auto_precision(["--precision", "auto", "--threads", "1"])
    assert torch.get_num_threads() == threads  # the probe's thread count is not left behind
    # a member's invalid option is named with the member, not as a usage error of train-anomaly
    with pytest.raises(InputError, match=r"--member '--precision auto --width abc': .*'--width'"):
        resolve_auto_precision(["--precision", "auto", "--width", "abc"])
