"""Named failure points for crash tests (as in etcd's and TiKV's failpoints).

The job calls :func:`hit` at a few named places (``before_commit`` of each batch). Normally
nothing happens. A test arms a point either in process (:func:`arm`, any callable) or, for a
worker in another process, through ``COILMAP_FAILPOINTS="before_commit=kill@3"``: the third
time the point is hit the process kills itself with SIGKILL (no cleanup, no rollback of its
own: exactly a crashed worker). ``sleep:SECONDS`` pauses instead.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

_armed: dict[str, Callable[[], None]] = {}
_hits: dict[str, int] = {}


def arm(name: str, action: Callable[[], None]) -> None:
    _armed[name] = action


def disarm(name: str) -> None:
    _armed.pop(name, None)


def _env_action(name: str) -> tuple[str, int] | None:
    spec = os.environ.get("COILMAP_FAILPOINTS", "")
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, value = item.partition("=")
        if key == name:
            action, _, nth = value.partition("@")
            return action, int(nth or 1)
    return None


def hit(name: str) -> None:
    _hits[name] = _hits.get(name, 0) + 1
    if name in _armed:
        _armed[name]()
        return
    env = _env_action(name)
    if env is None:
        return
    action, nth = env
    if _hits[name] != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
