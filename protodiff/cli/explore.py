"""``protodiff explore``: a run's concepts in the browser, live (the ``explore`` extra)."""

from __future__ import annotations

import ipaddress
import logging

import click

from protodiff.cli.options import device_option, set_option
from protodiff.errors import ProtodiffError

#: What the command needs beyond protodiff's own dependencies (the ``explore`` extra).
WEB_MODULES = ("starlette", "uvicorn")


def require_web() -> None:
    """A one-line error naming the extra to install when a web module is missing."""
    import importlib.util

    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ProtodiffError(f"protodiff explore needs {' and '.join(missing)}: pip install -e '.[explore]'")


@click.command()
@click.argument("run", type=click.Path())
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="The port to serve on.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to bind: this machine only by default; 0.0.0.0 serves anyone who can reach it.",
)
@device_option
@set_option
def explore(run: str, port: int, host: str, device: str, overrides: tuple[str, ...]) -> None:
    """Serve a page for RUN (a run directory or a checkpoint) at http://HOST:PORT: pick or upload an
    image, move one slider per condition dimension and watch the regeneration follow (from the
    image's cached inversion), scrub the denoising steps, and see the prototype gallery, the
    activation maps and the run's saved effect matrix and shortcut ranking. Ctrl-C stops it.

    Every slider edit is made as ``protodiff explain edit`` makes one; ``--set`` changes how, with
    the same keys (``--set follow=regression --set guidance=1``: the other dimensions follow the
    one moved, the edit that adds a background attribute).

    A run that will not load, or a bad upload, is a message on the page and a line in this log.
    """
    require_web()
    import uvicorn

    from protodiff.config import apply_overrides, parse
    from protodiff.devices import resolve_device
    from protodiff.explain.edit import EditSettings
    from protodiff.explore.app import open_app

    settings = parse(EditSettings, apply_overrides({}, list(overrides)), source="protodiff explore --set")

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if not local:
        click.echo(f"protodiff: warning: serving on {host}: anyone who can reach this machine can use the page", err=True)
    click.echo(f"loading {run} ...", err=True)
    app = open_app(run, device=str(resolve_device(device)), settings=settings)
    click.echo(f"exploring {run} at http://{host}:{port}/ (Ctrl-C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
