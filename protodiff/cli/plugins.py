"""``protodiff plugins``: what is installed, what each plugin registered, and what is broken."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from protodiff._registry.manager import plugin_manager


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def plugins(as_json: bool) -> None:
    """List every plugin with its version and what it registered."""
    manager = plugin_manager()
    if as_json:
        click.echo(json.dumps([asdict(p) for p in manager.plugins], indent=2))
        return
    for info in manager.plugins:
        status = click.style("ok", fg="green") if info.ok else click.style("BROKEN", fg="red")
        installed = " ".join(part for part in (info.distribution, info.version) if part)
        click.echo(f"{info.name}  ({installed}, {info.source})  {status}")
        if info.error:
            click.echo(f"    error: {info.error}")
        for kind, names in info.registered.items():
            click.echo(f"    {kind}: {', '.join(names)}")
