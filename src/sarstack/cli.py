"""Shared plumbing for the workflow scripts: logging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from sarstack.errors import SarstackError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # JAX logs its search for TPU/GPU plugins at INFO; keep job logs readable.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    # rasterio repeats GDAL's errors at INFO; our error message already names the file.
    if not verbose:
        logging.getLogger("rasterio._env").setLevel(logging.WARNING)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)``; a SarstackError becomes ``error: ...`` and exit status 2."""
    try:
        main(argv)
    except SarstackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
