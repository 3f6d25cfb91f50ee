"""The training-set audit: what a labelled defect image set is made of, and whether its split
leaks (pure core: pandas, numpy, scikit-learn; no files).

Input: a table with one row per image, columns ``path`` and ``label`` and, when known,
``coil`` (the hot coil the image's material came from), ``grade``, ``line``, ``station``,
``time`` (UTC) and ``split`` (``train``/``val``/``test``); ``content_hash`` when the shell could
hash the files. The report (a JSON-able dict, :data:`SCHEMA`) says:

- the class distribution, overall and per part;
- per class: how many coils it comes from and how concentrated it is on the few largest
  (top coil share, effective number of coils ``1 / sum(share^2)``), its grades, lines,
  stations and production period, with flags where a classifier could learn the context
  instead of the defect;
- the split: coils (and identical files) in more than one part, classes missing from a part,
  grades only in the test part, and each part's period;
- the **leakage alarm**: a decision tree that sees only the metadata (grade,
  line, station, production time; never pixels) predicts the class. Cross-validated on random
  folds it shows how far a naive random split would leak; trained on the train part and
  scored on the test part it shows whether *this* split is contaminated. Each is compared with
  chance (balanced accuracy ``1/k``) and with a permutation test (labels shuffled).
  Verdict: ``contaminated`` when the metadata classifier beats chance by at least 0.15
  balanced accuracy with p <= alpha (0.01; it takes at least 99 permutations), ``suspicious``
  from 0.05, else ``no alarm``.

Coil ids are not a feature (any split that keeps coils apart would make them useless on the
test part); the production time stands in for them.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, permutation_test_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from coilmap.errors import InputError

SCHEMA = "coilmap-dataset-audit/1"
METADATA = ("coil", "grade", "line", "station", "time")
CATEGORICAL = ("grade", "line", "station")
PARTS = ("train", "val", "test")

# Flags (documented in docs/fusion-data-tools.md).
TOP_COIL_SHARE_FLAG = 0.25
EFFECTIVE_COILS_FLAG = 5.0
SMALL_CLASS_FLAG = 30
CONTAMINATED_LIFT = 0.15
SUSPICIOUS_LIFT = 0.05
ALARM_P = 0.01


def _present(table: pd.DataFrame, col: str) -> pd.Series:
    if col not in table:
        return pd.Series(False, index=table.index)
    return table[col].notna() & (table[col].astype(str).str.len() > 0)


def _counts(s: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in s.value_counts().sort_index().items()}


def _part_order(part: str) -> tuple[int, str]:
    return (PARTS.index(part) if part in PARTS else len(PARTS), part)


def _time_range(t: pd.Series) -> list[str] | None:
    t = t.dropna()
    if t.empty:
        return None
    return [t.min().isoformat(), t.max().isoformat()]


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``time`` parsed (UTC) and ``label`` as text; clear errors otherwise."""
    for col in ("path", "label"):
        if col not in table:
            raise InputError(f"the image table has no {col!r} column", field=col)
    if table.empty:
        raise InputError("the image table is empty")
    out = table.copy()
    if out["label"].isna().any():
        row = int(np.flatnonzero(out["label"].isna().to_numpy())[0])
        raise InputError("missing label", line=row + 2, field="label")
    out["label"] = out["label"].astype(str)
    if "time" in out:
        parsed = pd.to_datetime(out["time"], utc=True, errors="coerce")
        bad = parsed.isna() & _present(out, "time")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"not a time: {out['time'].iloc[row]!r}", line=row + 2, field="time")
        out["time"] = parsed
    if "split" in out:
        odd = sorted(set(out["split"].dropna().astype(str)) - set(PARTS) - {"render"})
        if odd:
            raise InputError(f"unknown split value(s) {odd}; use train, val, test", field="split")
    return out


# --- per class -----------------------------------------------------------------------------


def _class_profile(
    rows: pd.DataFrame, has: dict[str, bool], span_days: float, n_grades: int
) -> dict[str, Any]:
    n = len(rows)
    prof: dict[str, Any] = {"class": str(rows["label"].iloc[0]), "n_images": n, "flags": []}
    if n < SMALL_CLASS_FLAG:
        prof["flags"].append(f"only {n} images")
    if has["coil"]:
        coils = rows["coil"].dropna().astype(str)
        share = coils.value_counts(normalize=True)
        prof.update(
            n_coils=int(coils.nunique()),
            top_coil=str(share.index[0]) if len(share) else None,
            top_coil_share=float(share.iloc[0]) if len(share) else None,
            effective_coils=float(1.0 / np.sum(share.to_numpy() ** 2)) if len(share) else None,
        )
        if len(share) and share.iloc[0] > TOP_COIL_SHARE_FLAG:
            prof["flags"].append(f"{share.iloc[0]:.0%} of its images come from one coil ({share.index[0]})")
        elif len(share) and prof["effective_coils"] < EFFECTIVE_COILS_FLAG:
            prof["flags"].append(f"concentrated on few coils (effective {prof['effective_coils']:.1f})")
    for col in CATEGORICAL:
        if has[col]:
            prof[col + "s"] = _counts(rows[col].dropna().astype(str))
    if has["grade"] and n_grades >= 3 and len(prof["grades"]) == 1:
        prof["flags"].append(f"seen on one grade only ({next(iter(prof['grades']))})")
    if has["time"]:
        t = rows["time"].dropna()
        prof["period"] = _time_range(t)
        prof["n_days"] = int(t.dt.floor("D").nunique())
        own = (t.max() - t.min()).total_seconds() / 86400.0 if len(t) else 0.0
        if span_days >= 30 and own < 0.1 * span_days:
            prof["flags"].append(f"from {own:.1f} days of a {span_days:.0f}-day data set")
    return prof


# --- the split -----------------------------------------------------------------------------


def _split_report(table: pd.DataFrame, has: dict[str, bool], classes: list[str]) -> dict[str, Any]:
    if "split" not in table or not table["split"].notna().any():
        return {"present": False}
    part = table["split"].astype("string")
    parts = _counts(part.dropna())
    rep: dict[str, Any] = {"present": True, "parts": {p: parts[p] for p in sorted(parts, key=_part_order)}}
    rep["classes_missing"] = {
        p: [c for c in classes if not ((part == p) & (table["label"] == c)).any()]
        for p in PARTS
        if (part == p).any()
    }
    overlap: dict[str, Any] = {}
    if has["coil"]:
        coil = table["coil"].astype("string")
        by_part = {p: set(coil[(part == p) & coil.notna()]) for p in PARTS}
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            both = sorted(by_part[a] & by_part[b])
            in_b = (part == b) & coil.isin(both)
            overlap[f"{a}_{b}"] = {
                "n_coils": len(both),
                "coils": both[:20],
                f"{b}_images_on_shared_coils": int(in_b.sum()),
                "share": float(in_b.sum() / max(int((part == b).sum()), 1)),
            }
    rep["coil_overlap"] = overlap
    if "content_hash" in table:
        h = table[["content_hash", "split", "path"]].dropna()
        groups = h.groupby("content_hash")["path"].apply(lambda p: sorted(p.astype(str)))
        rep["identical_files"] = [g for g in groups if len(g) > 1]
        dup = h.groupby("content_hash")["split"].nunique()
        rep["identical_files_across_parts"] = [
            sorted(h.loc[h["content_hash"] == k, "path"].astype(str).tolist()) for k in dup[dup > 1].index
        ]
    if has["grade"]:
        g_train = set(table.loc[part == "train", "grade"].dropna().astype(str))
        g_test = set(table.loc[part == "test", "grade"].dropna().astype(str))
        rep["grades_only_in_test"] = sorted(g_test - g_train)
    if has["time"]:
        rep["periods"] = {p: _time_range(table.loc[part == p, "time"]) for p in PARTS if (part == p).any()}
    return rep


# --- leakage -------------------------------------------------------------------------------


def metadata_features(table: pd.DataFrame, has: dict[str, bool]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, categorical mask, names)``: grade/line/station as category codes and the
    production time in days since the first image (-1 where unknown)."""
    cols, cat, names = [], [], []
    for col in CATEGORICAL:
        if has[col]:
            # Missing values are a category of their own (code -1).
            cols.append(pd.Categorical(table[col].astype("string")).codes.astype(np.float64))
            cat.append(True)
            names.append(col)
    if has["time"]:
        t = table["time"]
        days = ((t - t.min()).dt.total_seconds() / 86400.0).to_numpy(dtype=np.float64)
        cols.append(np.nan_to_num(days, nan=-1.0))
        cat.append(False)
        names.append("time_days")
    if not cols:
        return np.zeros((len(table), 0)), np.zeros(0, dtype=bool), []
    return np.column_stack(cols), np.asarray(cat), names


def _model(cat: np.ndarray, seed: int) -> Pipeline:
    """A decision tree on one-hot categories and the time: it learns any lookup from metadata
    to class (a grade, a week, a station) and fits in milliseconds, so the permutation test can
    refit it hundreds of times (a forest is ~40 times slower and barely more accurate here)."""
    onehot = OneHotEncoder(handle_unknown="ignore", min_frequency=2, sparse_output=False)
    columns = ColumnTransformer(
        [("cat", onehot, np.flatnonzero(cat)), ("num", "passthrough", np.flatnonzero(~cat))]
    )
    tree = DecisionTreeClassifier(min_samples_leaf=2, random_state=seed)
    return make_pipeline(columns, tree)


def _source(encoded: str, names: list[str]) -> str:
    """The metadata column behind a column name of the encoder (``cat__x0_S235`` -> ``grade``)."""
    kind, rest = encoded.split("__", 1)
    cats = [n for n in names if n != "time_days"]
    if kind == "num":
        return "time_days"
    return cats[int(rest.split("_", 1)[0][1:])]


def _verdict(score: float, chance: float, p_value: float, alpha: float) -> str:
    lift = score - chance
    if p_value <= alpha and lift >= CONTAMINATED_LIFT:
        return "contaminated"
    if p_value <= alpha and lift >= SUSPICIOUS_LIFT:
        return "suspicious"
    return "no alarm"


def leakage_alarm(
    table: pd.DataFrame,
    has: dict[str, bool],
    *,
    n_permutations: int = 99,
    alpha: float = ALARM_P,
    seed: int = 0,
) -> dict[str, Any]:
    """Metadata-only classifier vs chance: random-fold cross-validation and, when the table has
    train and test parts, train -> test."""
    X, cat, names = metadata_features(table, has)
    if not names:
        return {
            "available": False,
            "verdict": "not available",
            "message": "no metadata (grade, line, station, time): the leakage alarm cannot run",
        }
    y = table["label"].to_numpy()
    classes, counts = np.unique(y, return_counts=True)
    chance = 1.0 / len(classes)
    majority = float(counts.max() / counts.sum())
    rep: dict[str, Any] = {
        "available": True,
        "features": names,
        "chance_balanced_accuracy": chance,
        "majority_share": majority,
    }
    verdicts = []
    n_splits = int(min(5, counts.min()))
    if len(classes) >= 2 and n_splits >= 2:
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        score, perm, p_value = permutation_test_score(
            _model(cat, seed),
            X,
            y,
            cv=cv,
            n_permutations=n_permutations,
            scoring="balanced_accuracy",
            random_state=seed,
        )
        verdict = _verdict(float(score), chance, float(p_value), alpha)
        rep["random_folds"] = {
            "balanced_accuracy": float(score),
            "permuted_mean": float(np.mean(perm)),
            "p_value": float(p_value),
            "n_folds": n_splits,
            "verdict": verdict,
        }
    part = table["split"].astype("string") if "split" in table else None
    if part is not None and (part == "train").any() and (part == "test").any():
        tr = (part == "train").to_numpy()
        te = (part == "test").to_numpy()
        model = _model(cat, seed).fit(X[tr], y[tr])
        score = balanced_accuracy_score(y[te], model.predict(X[te]))
        rng = np.random.default_rng(seed)
        perm = np.array(
            [
                balanced_accuracy_score(
                    y[te], _model(cat, seed).fit(X[tr], rng.permutation(y[tr])).predict(X[te])
                )
                for _ in range(n_permutations)
            ]
        )
        p_value = (1.0 + float(np.sum(perm >= score))) / (n_permutations + 1.0)
        verdict = _verdict(float(score), chance, p_value, alpha)
        verdicts.append(verdict)
        rep["train_to_test"] = {
            "balanced_accuracy": float(score),
            "permuted_mean": float(perm.mean()),
            "p_value": p_value,
            "verdict": verdict,
        }
    full = _model(cat, seed).fit(X, y)
    importance = full[-1].feature_importances_
    names_out = full[0].get_feature_names_out()
    rep["importance"] = {
        name: float(sum(v for n, v in zip(names_out, importance, strict=True) if _source(n, names) == name))
        for name in names
    }
    # The split's own verdict decides when there is a split; else the random folds'.
    if verdicts:
        rep["verdict"] = verdicts[0]
    else:
        rep["verdict"] = rep.get("random_folds", {}).get("verdict", "not available")
    rep["message"] = _leak_message(rep)
    return rep


def _leak_message(rep: dict[str, Any]) -> str:
    parts = []
    chance = rep["chance_balanced_accuracy"]
    if "train_to_test" in rep:
        t = rep["train_to_test"]
        parts.append(
            f"metadata alone scores {t['balanced_accuracy']:.2f} balanced accuracy on the test part "
            f"(chance {chance:.2f}, p = {t['p_value']:.3f}): {t['verdict']}"
        )
    if "random_folds" in rep:
        r = rep["random_folds"]
        parts.append(
            f"on random folds it scores {r['balanced_accuracy']:.2f} (p = {r['p_value']:.3f}): "
            + ("a random split of this set would leak" if r["verdict"] != "no alarm" else "no alarm")
        )
    if rep.get("importance"):
        top = max(rep["importance"], key=rep["importance"].get)
        parts.append(f"most telling metadata: {top}")
    return "; ".join(parts) if parts else "too few images per class for the alarm"


# --- the report ----------------------------------------------------------------------------


def audit(
    table: pd.DataFrame,
    *,
    source: str = "",
    n_permutations: int = 99,
    alpha: float = ALARM_P,
    seed: int = 0,
) -> dict[str, Any]:
    """The audit report of a labelled image table (see the module docstring and
    docs/fusion-data-tools.md for every field)."""
    table = check_table(table).reset_index(drop=True)
    has = {c: bool(_present(table, c).any()) for c in METADATA}
    classes = sorted(table["label"].unique().tolist())
    counts = table["label"].value_counts()
    span_days = 0.0
    if has["time"]:
        t = table["time"].dropna()
        span_days = (t.max() - t.min()).total_seconds() / 86400.0
    n_grades = int(table["grade"].nunique()) if has["grade"] else 0
    rep: dict[str, Any] = {
        "schema": SCHEMA,
        "source": source,
        "n_images": len(table),
        "classes": classes,
        "metadata": {
            "columns": {c: float(_present(table, c).mean()) for c in METADATA},
            "available": any(has.values()),
            "note": ""
            if any(has.values())
            else "the images carry no metadata (coil, grade, line, station, time): "
            "per-class coils, grades and periods and the leakage alarm cannot be computed",
        },
        "class_distribution": {
            "overall": _counts(table["label"]),
            "by_split": {
                str(p): _counts(g["label"])
                for p, g in sorted(
                    table.groupby(table["split"].astype("string")), key=lambda pg: _part_order(str(pg[0]))
                )
            }
            if "split" in table and table["split"].notna().any()
            else {},
            "imbalance_ratio": float(counts.max() / counts.min()),
        },
        "per_class": [_class_profile(table[table["label"] == c], has, span_days, n_grades) for c in classes],
        "split": _split_report(table, has, classes),
        "leakage": leakage_alarm(table, has, n_permutations=n_permutations, alpha=alpha, seed=seed),
    }
    rep["findings"] = findings(rep)
    return rep


def findings(rep: dict[str, Any]) -> list[str]:
    """What to do about the report, most serious first."""
    out = []
    leak = rep["leakage"]
    if leak["verdict"] in ("contaminated", "suspicious"):
        out.append(
            f"LEAKAGE {leak['verdict'].upper()}: {leak['message']}. Split by coil "
            "(`coilmap dataset split`) and add images of each class from other grades and periods."
        )
    split = rep["split"]
    if split.get("present"):
        for key, o in split.get("coil_overlap", {}).items():
            if o["n_coils"]:
                a, b = key.split("_")
                out.append(
                    f"{o['n_coils']} coils are in both {a} and {b} ({o['share']:.0%} of the {b} images)"
                )
        if split.get("identical_files_across_parts"):
            out.append(
                f"{len(split['identical_files_across_parts'])} identical images lie in more than one part"
            )
        for p, missing in split.get("classes_missing", {}).items():
            if missing:
                out.append(f"the {p} part has no images of {', '.join(missing)}")
        if split.get("grades_only_in_test"):
            out.append(f"grades only in the test part: {', '.join(split['grades_only_in_test'])}")
    for prof in rep["per_class"]:
        for flag in prof["flags"]:
            out.append(f"{prof['class']}: {flag}")
    ratio = rep["class_distribution"]["imbalance_ratio"]
    if ratio > 10:
        out.append(f"the largest class has {ratio:.0f}x the images of the smallest")
    if not rep["metadata"]["available"]:
        out.append(rep["metadata"]["note"])
    return out


# --- renderings ----------------------------------------------------------------------------


def render_text(rep: dict[str, Any]) -> str:
    """The report as plain text for the terminal."""
    lines = [f"dataset audit: {rep['source']} ({rep['n_images']} images, {len(rep['classes'])} classes)", ""]
    lines.append("class distribution" + (" (per part)" if rep["class_distribution"]["by_split"] else ""))
    parts = list(rep["class_distribution"]["by_split"])
    head = f"  {'class':<18}{'images':>8}" + "".join(f"{p:>8}" for p in parts)
    if rep["metadata"]["columns"]["coil"]:
        head += f"{'coils':>7}{'top coil':>10}{'eff.':>7}"
    lines.append(head)
    for prof in rep["per_class"]:
        c = prof["class"]
        row = f"  {c:<18}{prof['n_images']:>8}"
        row += "".join(f"{rep['class_distribution']['by_split'][p].get(c, 0):>8}" for p in parts)
        if "n_coils" in prof:
            share = prof["top_coil_share"] or 0.0
            row += f"{prof['n_coils']:>7}{share:>10.0%}{prof['effective_coils'] or 0:>7.1f}"
        lines.append(row)
    lines.append("")
    meta = rep["metadata"]
    if not meta["available"]:
        lines += [f"metadata: {meta['note']}", ""]
    else:
        lines.append(
            "metadata present: " + ", ".join(f"{k} {v:.0%}" for k, v in meta["columns"].items() if v > 0)
        )
        for prof in rep["per_class"]:
            bits = []
            if "grades" in prof:
                bits.append("grades " + ", ".join(f"{k} {v}" for k, v in prof["grades"].items()))
            if prof.get("period"):
                bits.append(
                    f"{prof['period'][0][:10]} .. {prof['period'][1][:10]} (images on {prof['n_days']} days)"
                )
            lines.append(f"  {prof['class']}: " + "; ".join(bits))
        lines.append("")
    split = rep["split"]
    if split.get("present"):
        lines.append("split: " + ", ".join(f"{k} {v}" for k, v in split["parts"].items()))
        for key, o in split.get("coil_overlap", {}).items():
            lines.append(
                f"  coils shared {key.replace('_', '/')}: {o['n_coils']} ({o['share']:.0%} of images)"
            )
        if "identical_files_across_parts" in split:
            n_same, n_across = len(split["identical_files"]), len(split["identical_files_across_parts"])
            lines.append(f"  identical files: {n_same} groups, across parts: {n_across}")
    else:
        lines.append("split: none in the table")
    lines += ["", f"leakage alarm: {rep['leakage']['verdict'].upper()}", f"  {rep['leakage']['message']}", ""]
    if rep["findings"]:
        lines.append("findings")
        lines += [f"  - {f}" for f in rep["findings"]]
    return "\n".join(lines) + "\n"


def render_html(rep: dict[str, Any]) -> str:
    """A small static HTML page of the report (no scripts, no external files)."""
    e = html.escape
    verdict = rep["leakage"]["verdict"]
    colour = {"contaminated": "#c62828", "suspicious": "#ef6c00", "no alarm": "#2e7d32"}.get(verdict, "#555")
    rows = []
    for prof in rep["per_class"]:
        by = rep["class_distribution"]["by_split"]
        cells = [e(prof["class"]), str(prof["n_images"])]
        cells += [str(by[p].get(prof["class"], 0)) for p in by]
        cells += [
            str(prof.get("n_coils", "")),
            f"{prof['top_coil_share']:.0%}" if prof.get("top_coil_share") is not None else "",
            ", ".join(e(f"{k} {v}") for k, v in prof.get("grades", {}).items()),
            e(" .. ".join(x[:10] for x in prof["period"])) if prof.get("period") else "",
            e("; ".join(prof["flags"])),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = [
        "class",
        "images",
        *rep["class_distribution"]["by_split"],
        "coils",
        "top coil",
        "grades",
        "period",
        "flags",
    ]
    findings_html = "".join(f"<li>{e(f)}</li>" for f in rep["findings"]) or "<li>none</li>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>dataset audit</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>Dataset audit</h1><p>{e(rep['source'])}: {rep['n_images']} images, "
        f"{len(rep['classes'])} classes</p>"
        f"<h2>Leakage alarm: <span style='color:{colour}'>{e(verdict)}</span></h2>"
        f"<p>{e(rep['leakage']['message'])}</p>"
        "<h2>Classes</h2><table><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
        f"<h2>Findings</h2><ul>{findings_html}</ul></body></html>\n"
    )
