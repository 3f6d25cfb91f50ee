"""``coilmap bench NAME [ARGS...]``: run ``benchmarks/bench_<name>.py`` (its ``main(argv)``)."""

from __future__ import annotations

import importlib
import pkgutil

import click

import benchmarks


def _names() -> list[str]:
    return sorted(
        m.name[len("bench_") :].replace("_", "-")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(name: str | None, args: tuple[str, ...]) -> None:
    """Run a benchmark (without NAME: list them). Results go to stdout; docs/benchmarks.md
    holds the figures and the commands that made them."""
    if not name:
        click.echo("\n".join(_names()))
        return
    if name not in _names():
        raise click.BadParameter(f"unknown benchmark {name!r}; one of: {', '.join(_names())}")
    module = importlib.import_module(f"benchmarks.bench_{name.replace('-', '_')}")
    module.main(list(args))
