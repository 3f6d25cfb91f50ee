"""Bad operations and bad plant parameters fail with a clear message."""

from __future__ import annotations

from dataclasses import replace

import pytest

from coilmap.errors import InputError
from plant.ledger import Ledger
from plant.material import Defects
from plant.params import plant_params, validate


def _ledger() -> Ledger:
    led = Ledger()
    led.create("H1", 1000.0, 1200.0, line="HSM", time_s=0.0, grade="DC01", thickness_mm=3.0,
               defects=Defects.from_boxes([1, 2], [100.0, 950.0], [0.0, 0.0], [10.0, 10.0],
                                          [10.0, 10.0], [True, False]))
    return led


def test_negative_length_is_rejected() -> None:
    with pytest.raises(InputError, match="length and width must be positive"):
        Ledger().create("H1", -5.0, 1200.0, line="HSM", time_s=0.0, grade="DC01",
                        thickness_mm=3.0, defects=Defects.empty())


def test_cut_beyond_the_coil_is_rejected() -> None:
    led = _ledger()
    with pytest.raises(InputError, match=r"piece H1: field outputs: cut \[0.0, 1500.0\) lies "
                                         r"beyond the piece \(length 1000.0 mm\)"):
        led.cut("H1", [("C1", 0.0, 1500.0)], line="PL", time_s=1.0)


def test_crop_longer_than_the_coil_and_reuse_of_a_piece_are_rejected() -> None:
    led = _ledger()
    with pytest.raises(InputError, match="does not fit a piece of 1000.0 mm"):
        led.crop("H1", "H1c", 600.0, 500.0, line="PL", time_s=1.0)
    led.crop("H1", "H1c", 50.0, 60.0, line="PL", time_s=1.0)
    with pytest.raises(InputError, match="already consumed"):
        led.crop("H1", "H1d", 1.0, 1.0, line="PL", time_s=2.0)


def test_removed_defects_are_recorded_with_the_operation() -> None:
    led = _ledger()
    led.crop("H1", "H1c", 50.0, 60.0, line="PL", time_s=1.0)
    assert led.removed == [(2, "H1", "crop", "H1c")]
    assert led.events[-1] == {"op": "crop", "input": "H1", "output": "H1c", "head_mm": 50.0,
                              "tail_mm": 60.0, "line": "PL",
                              "time": "2026-01-05T06:00:01.000Z"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("hot_length_mm", (-1.0, 5.0), "lengths must be positive"),
    ("pl_crop_mm", (2000.0, 900_000.0), "would consume a whole hot coil"),
    ("n_hot_coils", 0, "at least one hot coil"),
    ("cold_thickness_mm", (3.0, 5.0), "thinner"),
    ("pl_join_share", 1.5, r"a share must lie in \[0, 1\]"),
])
def test_bad_parameters_fail_clearly(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate(replace(plant_params("small"), **{field: value}))


def test_unknown_size_is_rejected() -> None:
    with pytest.raises(InputError, match="unknown plant size 'huge'"):
        plant_params("huge")
