"""The `repro` command line: parse, validate, call one library function. Only this module imports click."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repro")
def main() -> None:
    """Reproduce, ablate and extend memory-augmented autoencoders for video anomaly detection."""
