"""The ``protodiff`` command line: one group, one module per command family.

Every user error (:class:`~protodiff.errors.ProtodiffError`) is printed as one line and exits
with status 2; ``--debug`` (or ``PROTODIFF_DEBUG=1``) shows the traceback instead. Warnings meant
for the user (:class:`~protodiff.errors.ProtodiffWarning`) are one ``protodiff: warning:`` line
each, without the source line Python would add.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from protodiff.errors import ProtodiffError, ProtodiffWarning

_show_warning = warnings.showwarning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, ProtodiffWarning):
        click.echo(f"protodiff: warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ProtodiffError as exc:
            if ctx.params.get("debug") or os.environ.get("PROTODIFF_DEBUG") == "1":
                raise
            click.echo(f"protodiff: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("protodiff: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="protodiff")
def main(debug: bool) -> None:
    """protodiff: interpretable diffusion conditioners (Patronus and friends)."""
    warnings.showwarning = _one_line_warning


def _register_commands() -> None:
    from protodiff.cli import bench, classifier, data, encode, explain, explore, names, plugins, prior, sample, summary, train
    from protodiff.cli.eval import eval_command

    main.add_command(plugins.plugins)
    main.add_command(train.train)
    main.add_command(train.config_command)
    main.add_command(sample.sample)
    main.add_command(encode.encode)
    main.add_command(prior.fit_prior)
    main.add_command(names.names)
    main.add_command(data.data)
    main.add_command(eval_command)
    main.add_command(summary.summary)
    main.add_command(explain.explain)
    main.add_command(explore.explore)
    main.add_command(classifier.classifier)
    main.add_command(bench.bench)


_register_commands()
