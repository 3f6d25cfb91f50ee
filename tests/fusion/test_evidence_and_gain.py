"""Evidence features on hand-made spots, and the fused classifier beating image-only when the
upstream stations know something the image does not."""

import numpy as np
import pandas as pd
import pytest

from fusion.evidence import FUSION_CLASSES, PSEUDO, MatchTolerance, evidence, prob_columns
from fusion.proof import gain_report

PC = prob_columns()


def frame(rows: list[dict]) -> pd.DataFrame:
    out = []
    for r in rows:
        probs = np.zeros(len(FUSION_CLASSES))
        probs[FUSION_CLASSES.index(r.pop("cls"))] = r.pop("p", 1.0)
        out.append({**r, **dict(zip(PC, probs, strict=True))})
    return pd.DataFrame(out)


def test_tolerance_grows_with_distance_to_marks() -> None:
    tol = MatchTolerance(base_x_mm=50, per_m_x_mm=1.0)
    got = tol.x_mm(np.array([0.0, 10_000.0, 20_000.0]), np.array([0.0, 20_000.0]))
    assert got.tolist() == [50.0, 60.0, 50.0]


def test_matches_same_spot_same_surface_only() -> None:
    targets = frame(
        [
            {
                "obs_id": 1,
                "station": "CAL-T",
                "x_mm": 1000.0,
                "y_mm": 0.0,
                "is_top": True,
                "cls": "crazing",
                "p": 0.6,
            },
            {"obs_id": 2, "station": "CAL-T", "x_mm": 5000.0, "y_mm": 0.0, "is_top": True, "cls": "patches"},
        ]
    )
    upstream = frame(
        [
            {
                "obs_id": 10,
                "station": "PL-T",
                "x_mm": 1010.0,
                "y_mm": 0.0,
                "is_top": True,
                "kept": True,
                "cls": "scratches",
            },
            {
                "obs_id": 11,
                "station": "PL-B",
                "x_mm": 1000.0,
                "y_mm": 0.0,
                "is_top": False,
                "kept": True,
                "cls": "inclusion",
            },
            {
                "obs_id": 12,
                "station": "HSM-T",
                "x_mm": 990.0,
                "y_mm": 500.0,
                "is_top": True,
                "kept": True,
                "cls": "inclusion",
            },
            {
                "obs_id": 13,
                "station": "HSM-T",
                "x_mm": 1000.0,
                "y_mm": 0.0,
                "is_top": True,
                "kept": False,
                "cls": "inclusion",
            },
        ]
    )
    ev = evidence(
        targets,
        upstream,
        length_mm=10_000.0,
        marks_x_mm=np.array([0.0, 10_000.0]),
        upstream_stations=[("PL-T", True), ("PL-B", False), ("HSM-T", True)],
        grades=["DC04"],
        tolerance=MatchTolerance(base_x_mm=50, per_m_x_mm=0.0, y_mm=40),
    )
    f = dict(zip(ev.names, ev.features[0], strict=True))
    assert f["up_scratches"] == pytest.approx(1.0)
    assert f["up_inclusion"] == 0.0  # other surface, too far across, or cut away
    assert f["up_stations"] == 1
    assert f["up_persistence"] == pytest.approx(0.5)  # PL-T saw it, HSM-T (top) did not
    assert f["up_nearest"] == pytest.approx(0.2)
    assert f["own_crazing"] == pytest.approx(0.6)
    assert [u["observation_id"] for u in ev.used[0]] == [10]
    g = dict(zip(ev.names, ev.features[1], strict=True))
    assert g["up_weight"] == 0.0 and g["up_nearest"] == 2.0 and ev.used[1] == []
    # four kept upstream observations on 10 m: 0.3 inclusion / m (only kept ones count)
    assert f["coil_inclusion_per_m"] == pytest.approx(0.2)


def test_no_upstream_observations_gives_no_evidence() -> None:
    targets = frame(
        [{"obs_id": 1, "station": "HSM-T", "x_mm": 10.0, "y_mm": 0.0, "is_top": True, "cls": "patches"}]
    )
    ev = evidence(targets, pd.DataFrame(), length_mm=1000.0, marks_x_mm=np.array([0.0]),
                  upstream_stations=[], grades=[])  # fmt: skip
    f = dict(zip(ev.names, ev.features[0], strict=True))
    assert f["up_weight"] == 0.0 and f["up_nearest"] == 2.0 and f["own_patches"] == 1.0
    assert ev.used == [[]]
    none = evidence(pd.DataFrame(), pd.DataFrame(), length_mm=1.0, marks_x_mm=np.zeros(0),
                    upstream_stations=[], grades=["DC04"])  # fmt: skip
    assert none.features.shape == (0, len(ev.names) + 1)


def synthetic_plant(seed: int, n_coils: int = 16, per_coil: int = 30):  # type: ignore[no-untyped-def]
    """Downstream observations whose image is ambiguous (crazing vs rolled-in scale, pseudo
    looks like a random class) while upstream stations saw the real defects."""
    rng = np.random.default_rng(seed)
    feats, ys, groups, stations = [], [], [], []
    names = None
    for coil in range(n_coils):
        classes = rng.choice(FUSION_CLASSES, size=per_coil, p=[0.15, 0.15, 0.15, 0.15, 0.15, 0.1, 0.15])
        targets, upstream = [], []
        for i, c in enumerate(classes):
            x = 1000.0 * i + 500.0
            shown = c
            if c in ("crazing", "rolled-in_scale") and rng.random() < 0.45:
                shown = "rolled-in_scale" if c == "crazing" else "crazing"
            if c == PSEUDO:
                shown = rng.choice(FUSION_CLASSES[:-1])
            targets.append(
                {
                    "obs_id": f"{coil}-{i}",
                    "station": "CAL-T",
                    "x_mm": x,
                    "y_mm": 0.0,
                    "is_top": True,
                    "cls": shown,
                    "p": 0.5 + 0.4 * rng.random(),
                    "grade": "DC04",
                }
            )
            if c != PSEUDO and rng.random() < 0.85:
                upstream.append(
                    {
                        "obs_id": f"u{coil}-{i}",
                        "station": "PL-T",
                        "x_mm": x + rng.normal(0, 15),
                        "y_mm": rng.normal(0, 5),
                        "is_top": True,
                        "kept": True,
                        "cls": c,
                        "p": 0.8,
                    }
                )
        t, u = frame(targets), frame(upstream)
        ev = evidence(
            t,
            u,
            length_mm=per_coil * 1000.0,
            marks_x_mm=np.array([0.0, per_coil * 1000.0]),
            upstream_stations=[("PL-T", True)],
            grades=["DC04"],
        )
        feats.append(ev.features)
        names = ev.names
        ys.extend(classes)
        groups.extend([coil] * per_coil)
        stations.extend(["CAL-T"] * per_coil)
    return np.vstack(feats), np.array(ys), np.array(groups), np.array(stations), names


def test_fused_beats_image_only_on_coil_grouped_folds() -> None:
    X, y, groups, stations, names = synthetic_plant(seed=3)
    own = [i for i, n in enumerate(names) if n.startswith("own_")]
    report = gain_report(X, y, groups, stations, own_columns=own, classes=FUSION_CLASSES, n_splits=3)
    t = report.table.set_index("model")
    assert t.loc["fused", "macro_f1"] >= t.loc["image_only", "macro_f1"] + 0.05
    assert t.loc["fused", "pseudo_rejected"] > t.loc["image_only", "pseudo_rejected"]


def test_pseudo_threshold_keeps_the_real_loss_and_falls_as_it_grows() -> None:
    from fusion.pseudo_threshold import pseudo_threshold_for

    rng = np.random.default_rng(5)
    y = np.where(rng.random(400) < 0.3, PSEUDO, "scratches")
    p = np.clip(np.where(y == PSEUDO, rng.beta(5, 2, 400), rng.beta(2, 5, 400)), 0, 1)
    real = p[y != PSEUDO]
    previous = 1.0
    for loss in (0.0, 0.01, 0.05, 0.2, 0.5):
        t = pseudo_threshold_for(p, y, real_loss=loss)
        lost = float((real >= t).mean())
        assert lost <= loss + 1e-12
        # the lowest such threshold: one observed probability lower would lose too many
        lower = real[real < t].max(initial=-1.0)
        assert lower < 0 or float((real >= lower).mean()) > loss
        assert t <= previous
        previous = t


def test_gain_report_with_a_real_loss_calls_fewer_real_defects_pseudo() -> None:
    X, y, groups, stations, names = synthetic_plant(seed=4)
    own = [i for i, n in enumerate(names) if n.startswith("own_")]
    args = dict(own_columns=own, classes=FUSION_CLASSES, n_splits=3)
    plain = gain_report(X, y, groups, stations, **args)
    kept = gain_report(X, y, groups, stations, real_loss=0.01, **args)
    assert plain.pseudo_threshold is None and 0.0 < kept.pseudo_threshold < 1.0
    real = y != PSEUDO
    lost_plain = (plain.predictions["fused"][real] == PSEUDO).mean()
    lost_kept = (kept.predictions["fused"][real] == PSEUDO).mean()
    assert lost_kept <= 0.01 and lost_kept <= lost_plain
    assert "pseudo only where its probability >=" in kept.text()
