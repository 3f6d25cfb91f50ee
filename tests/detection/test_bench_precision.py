"""``coilmap bench precision``: both precisions train the same networks, and the separable SSIM
window it times is the same loss as the 2-D window it is compared with."""

import json

import pytest
import torch

from benchmarks.bench_precision import _ssim_2d_window, main
from detection.anomaly.ssim import ssim_map


def test_the_separable_ssim_equals_the_2d_window_and_its_gradient() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.rand(2, 1, 37, 45, generator=gen, requires_grad=True)
    b = torch.rand(2, 1, 37, 45, generator=gen)
    torch.testing.assert_close(ssim_map(a, b), _ssim_2d_window(a, b), atol=1e-5, rtol=1e-4)
    (ga,) = torch.autograd.grad(ssim_map(a, b).mean(), a)
    (gb,) = torch.autograd.grad(_ssim_2d_window(a, b).mean(), a)
    torch.testing.assert_close(ga, gb, atol=1e-6, rtol=1e-3)


def test_the_benchmark_times_every_network_in_both_precisions(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        main(["--repeats", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["network"] for r in rows] == ["draem", "context_aggregation", "ssim_loss"]
    for r in rows[:2]:
        assert r["fp32_ms"] > 0 and r["bf16_ms"] > 0 and r["speedup_bf16"] > 0
    assert rows[2]["window_2d_ms"] > 0 and rows[2]["separable_ms"] > 0
