import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coilmap.errors import InputError
from tracking.registration import MarkRegistration, lateral_true_y


@settings(max_examples=50, deadline=None)
@given(
    st.floats(-5000, 5000),  # encoder offset, mm
    st.floats(-0.005, 0.005),  # scale error
    st.lists(st.integers(0, 1000), min_size=2, max_size=8, unique=True),  # marks, m
)
def test_linear_encoder_errors_are_removed_exactly(offset, scale, marks) -> None:  # type: ignore[no-untyped-def]
    true = np.sort(np.array(marks, dtype=float)) * 1000.0
    obs = offset + (1 + scale) * true
    reg = MarkRegistration(obs, true)
    x = np.linspace(-1e5, 1.1e6, 50)
    np.testing.assert_allclose(reg.true_x(offset + (1 + scale) * x), x, atol=1e-6)


def test_slip_between_marks_is_piecewise() -> None:
    # slip: the encoder lost 100 mm between 1000 m and 2000 m
    reg = MarkRegistration([0.0, 1_000_000.0, 1_999_900.0], [0.0, 1_000_000.0, 2_000_000.0])
    assert reg.true_x(np.array([500_000.0, 1_499_950.0, 2_999_900.0])).tolist() == pytest.approx(
        [500_000.0, 1_500_000.0, 2_000_000.0 + 1_000_000.0 * 1_000_000.0 / 999_900.0], abs=1e-6
    )


def test_tolerance_grows_away_from_marks() -> None:
    reg = MarkRegistration([0.0, 100_000.0], [0.0, 100_000.0])
    tol = reg.tolerance_mm(np.array([0.0, 25_000.0, 50_000.0, 100_000.0, 160_000.0]))
    assert tol[0] == tol[3] < tol[1] < tol[2] < tol[4]


def test_out_of_order_marks_are_a_clear_error() -> None:
    with pytest.raises(InputError, match="out of order"):
        MarkRegistration([0.0, 10.0], [5.0, 1.0])
    with pytest.raises(InputError, match="at least one"):
        MarkRegistration([], [])


def test_lateral_wander_and_calibration_are_removed() -> None:
    x = np.array([0.0, 500.0, 1000.0])
    wander = np.array([0.0, 30.0, -20.0])
    cam = 1.01
    y_true = np.array([100.0, -200.0, 600.0])
    y_obs = wander + cam * y_true
    got = lateral_true_y(
        x,
        y_obs,
        edge_x_mm=x,
        edge_os_obs_mm=wander + cam * 625,
        edge_ds_obs_mm=wander - cam * 625,
        width_mm=1250.0,
    )
    np.testing.assert_allclose(got, y_true)
