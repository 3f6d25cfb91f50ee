import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tracking.linear import PiecewiseLinear


@st.composite
def monotone_pl(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(2, 6))
    dx = draw(st.lists(st.floats(1.0, 1e5), min_size=n - 1, max_size=n - 1))
    dy = draw(st.lists(st.floats(1.0, 1e5), min_size=n - 1, max_size=n - 1))
    x0 = draw(st.floats(-1e5, 1e5))
    y0 = draw(st.floats(-1e5, 1e5))
    sign = draw(st.sampled_from([1.0, -1.0]))
    xs = x0 + np.concatenate(([0.0], np.cumsum(dx)))
    ys = y0 + sign * np.concatenate(([0.0], np.cumsum(dy)))
    return PiecewiseLinear(xs, ys)


@given(monotone_pl(), st.lists(st.floats(-3e5, 3e5), min_size=1, max_size=20))
def test_inverse_undoes_the_function(f, xs):  # type: ignore[no-untyped-def]
    x = np.array(xs)
    np.testing.assert_allclose(f.inverse()(f(x)), x, rtol=1e-9, atol=1e-6)


@given(monotone_pl(), monotone_pl(), st.lists(st.floats(-3e5, 3e5), min_size=1, max_size=20))
def test_composition_equals_applying_in_turn(f, g, xs):  # type: ignore[no-untyped-def]
    x = np.array(xs)
    np.testing.assert_allclose(f.then(g)(x), g(f(x)), rtol=1e-8, atol=1e-5)


def test_end_segments_are_extended() -> None:
    f = PiecewiseLinear(np.array([0.0, 10.0, 20.0]), np.array([0.0, 20.0, 30.0]))
    assert f(np.array([-5.0, 25.0])).tolist() == [-10.0, 35.0]


def test_rejects_non_monotone_knots() -> None:
    import pytest

    with pytest.raises(ValueError, match="monotone"):
        PiecewiseLinear(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0]))
