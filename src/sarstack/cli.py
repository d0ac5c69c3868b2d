"""Shared plumbing for the workflow scripts: logging and one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
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


#: GDAL's block cache per job, in MB, unless the user set GDAL_CACHEMAX. GDAL's
#: default is 5 % of the machine's memory (1.2 GB on 24 GB), which a job reading
#: a window of every interferogram fills: memory would follow the machine, not
#: the block size. The blocks are read once each, so the cache buys nothing.
GDAL_CACHE_MB = 64


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)``; a SarstackError becomes ``error: ...`` and exit status 2."""
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    try:
        main(argv)
    except SarstackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
