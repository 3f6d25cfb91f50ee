"""The ``coilmap`` console script: one group, a sub-command group per area.

Area commands live beside their code (``tracking/cli.py``, ``detection/cli.py``, ...) and are
imported only when used, so ``coilmap --help`` does not import torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from coilmap.errors import CoilmapError

# name -> "module:attribute" of a click command or group.
AREA_COMMANDS: dict[str, str] = {
    "db": "coilmap.db_cli:db",
    "track": "tracking.cli:track",
    "coil": "tracking.cli:coil",
    "simulate": "plant.cli:simulate",
    "demo": "coilmap.demo:demo",
    "eval": "plant.cli:eval_group",
    "detect": "detection.cli:detect",
    "ingest": "ingestion.cli:ingest",
    "scheduler": "ingestion.cli:scheduler",
    "fuse": "fusion.cli:fuse",
    "dataset": "fusion.cli:dataset",
    "dashboard": "dashboard.cli:dashboard",
    "bench": "coilmap.bench_cli:bench",
}


def add_module_commands(group: click.Group, modules: tuple[str, ...] | list[str]) -> None:
    """Add the ``COMMANDS`` of each of ``modules`` to ``group``; a module that is not there
    (an area not installed) is skipped, an import error inside one is not hidden."""
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        for command in getattr(module, "COMMANDS", ()):
            group.add_command(command)


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in AREA_COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = AREA_COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # An area that is not built yet is simply absent; a missing dependency inside a
            # built area is a real error and must surface.
            if exc.name == module_name or module_name.startswith(f"{exc.name}."):
                return None
            raise
        return getattr(module, attr, None)


@click.group(cls=LazyGroup)
@click.version_option(package_name="coilmap")
def cli() -> None:
    """coilmap: one coil map for every line's inspection stations."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="coilmap", standalone_mode=False)
    except CoilmapError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
