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
#: default is 5 % of the machine's memory (1.2 GB here, 13 GB on a 256 GB node):
#: memory would follow the machine, not the block size. Too small a cache is
#: slow instead: inversion blocks are narrower than the inputs' tiles, so each
#: tile row of every interferogram must stay cached while its blocks are read
#: (102 ifgs x 512-row tiles x 2048 cols: 430 MB), else it is decompressed
#: once per block (64 MB: the 2048^2 x 102 ifgs inversion 20 % slower, the
#: gather 3x slower).
GDAL_CACHE_MB = 512


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)``; a SarstackError becomes ``error: ...`` and exit status 2."""
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    try:
        main(argv)
    except SarstackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
