"""What ``coilmap ingest status`` and ``coilmap ingest quarantine`` print (read-only queries)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from coilmap import models as m
from coilmap.db import transaction


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    s = (now - t).total_seconds()
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}min ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def status_text(engine: Engine, *, n_runs: int = 10) -> str:
    now = datetime.now(UTC)
    F, R, P, Q, S = m.IngestionFile, m.IngestionRun, m.PendingRecord, m.QuarantinedRecord, m.Station
    with transaction(engine) as s:
        stations = s.execute(
            select(S.id, S.code, m.Line.code)
            .join(m.Line, m.Line.id == S.line_id)
            .order_by(m.Line.code, S.code)
        ).all()
        backlog: dict[int, dict[str, int]] = {}
        for sid, state, n in s.execute(
            select(F.station_id, F.state, func.count()).group_by(F.station_id, F.state)
        ):
            backlog.setdefault(sid, {})[state] = n
        pending = dict(s.execute(select(P.station_id, func.count()).group_by(P.station_id)).all())
        quarantined = dict(s.execute(select(Q.station_id, func.count()).group_by(Q.station_id)).all())
        last = {}
        for run in s.scalars(select(R).order_by(R.id.desc()).limit(2000)):
            last.setdefault(run.station_id, run)
        runs = list(s.scalars(select(R).order_by(R.id.desc()).limit(n_runs)))
        codes = {sid: code for sid, code, _ in stations}
    head = (
        f"{'line':<5} {'station':<8} {'last run':<24} {'files new/pend/done/quar':<25} {'waiting':>7} "
        f"{'quarant.':>8} {'lag':>9}"
    )
    out = [head, "-" * len(head)]
    for sid, code, line in stations:
        r = last.get(sid)
        b = backlog.get(sid, {})
        run = f"{r.status} {_ago(r.finished_at or r.started_at, now)}" if r else "never"
        lag = f"{r.lag_s:.0f}s" if r and r.lag_s is not None else "-"
        files = f"{b.get('new', 0)}/{b.get('pending', 0)}/{b.get('done', 0)}/{b.get('quarantined', 0)}"
        out.append(
            f"{line:<5} {code:<8} {run:<24} {files:<25} {pending.get(sid, 0):>7} "
            f"{quarantined.get(sid, 0):>8} {lag:>9}"
        )
    out += [
        "",
        f"latest {len(runs)} runs:",
        f"{'run':>5} {'station':<8} {'worker':<22} {'status':<8} {'started':<20} {'s':>6} {'files':>5} "
        f"{'obs':>7} {'skip':>5} {'quar':>5} {'pend':>5}  errors",
    ]
    for r in runs:
        started = r.started_at if r.started_at.tzinfo else r.started_at.replace(tzinfo=UTC)
        took = (
            (r.finished_at.replace(tzinfo=UTC) - started.replace(tzinfo=UTC)).total_seconds()
            if r.finished_at
            else float("nan")
        )
        errors = "; ".join(str(e) for e in (r.errors or []))[:120]
        out.append(
            f"{r.id:>5} {codes.get(r.station_id, '-'):<8} {str(r.worker or '-')[:22]:<22} {r.status:<8} "
            f"{started:%Y-%m-%d %H:%M:%S} {took:>6.1f} {r.n_files:>5} {r.n_observations:>7} "
            f"{r.n_skipped:>5} {r.n_quarantined:>5} {r.n_pending:>5}  {errors}"
        )
    return "\n".join(out)


def quarantine_text(engine: Engine, *, station: str | None = None, limit: int = 50) -> str:
    Q, S = m.QuarantinedRecord, m.Station
    with transaction(engine) as s:
        stmt = (
            select(Q, S.code).join(S, S.id == Q.station_id, isouter=True).order_by(Q.id.desc()).limit(limit)
        )
        if station:
            stmt = stmt.where(S.code == station)
        rows = s.execute(stmt).all()
        kinds = s.execute(select(Q.kind, func.count()).group_by(Q.kind).order_by(func.count().desc())).all()
    out = ["by kind: " + ", ".join(f"{k or '-'} {n}" for k, n in kinds), ""]
    for q, code in rows:
        where = q.path + (f":{q.line_no}" if q.line_no else "") + (f" [{q.field}]" if q.field else "")
        out.append(f"{code or '-':<8} {q.kind or '-':<16} {where}: {q.reason}")
    return "\n".join(out)
