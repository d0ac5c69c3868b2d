"""Input files on a local disk or in S3: globbing, fingerprints, GDAL's S3 settings.

An input glob may name an S3 prefix, ``s3://bucket/prefix/**/*_VV.tif``
(``rtc.inputs``, ``rtc.stacks``, ``insar.unwrapped`` and its companions).
Its objects are listed with boto3 (pip extra ``s3``) and read where they
are, windowed, through GDAL's ``/vsis3/`` file system: nothing is copied.
Every matched object is named ``/vsis3/bucket/key`` from then on, so the
stages open it like any raster path.

Credentials and endpoint come from the environment as the AWS tools expect
them (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` for an S3-compatible store);
:func:`configure_gdal_s3` derives GDAL's ``AWS_S3_ENDPOINT``, ``AWS_HTTPS``
and ``AWS_VIRTUAL_HOSTING`` from ``AWS_ENDPOINT_URL`` where they are unset.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sarstack.errors import SarstackError

S3_SCHEME = "s3://"
VSI_S3 = "/vsis3/"


def is_s3(pattern: str | Path) -> bool:
    """Whether a glob or path names S3 (``s3://...`` or ``/vsis3/...``)."""
    text = str(pattern)
    return text.startswith(S3_SCHEME) or text.startswith(VSI_S3)


def configure_gdal_s3() -> None:
    """GDAL's S3 settings from ``AWS_ENDPOINT_URL`` when the user set none of them.

    ``AWS_ENDPOINT_URL=http://127.0.0.1:9000`` gives ``AWS_S3_ENDPOINT=127.0.0.1:9000``,
    ``AWS_HTTPS=NO`` and ``AWS_VIRTUAL_HOSTING=FALSE`` (path-style requests,
    which S3-compatible stores expect). Without ``AWS_ENDPOINT_URL`` nothing is set
    (GDAL then talks to AWS itself).
    """
    url = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if not url:
        return
    parts = urlsplit(url if "://" in url else f"https://{url}")
    os.environ.setdefault("AWS_S3_ENDPOINT", parts.netloc + parts.path.rstrip("/"))
    os.environ.setdefault("AWS_HTTPS", "NO" if parts.scheme == "http" else "YES")
    os.environ.setdefault("AWS_VIRTUAL_HOSTING", "FALSE")


def _split(pattern: str) -> tuple[str, str]:
    """``s3://bucket/key-glob`` (or ``/vsis3/bucket/key``) -> (bucket, key glob)."""
    text = str(pattern)
    rest = text[len(S3_SCHEME):] if text.startswith(S3_SCHEME) else text[len(VSI_S3):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise SarstackError(f"{pattern}: no bucket in the S3 address")
    return bucket, key


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regular expression over ``/``-separated keys: ``**/`` is any
    number of folders, ``*`` and ``?`` stay within one, ``[...]`` a set."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            j = pattern.index("]", i + 1)
            body = pattern[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


@functools.cache
def _client() -> Any:
    try:
        import boto3
    except ImportError:
        raise SarstackError(
            "s3:// inputs need boto3: pip install 'sarstack[s3]' (or pip install boto3)"
        ) from None
    return boto3.client("s3")


def _s3_objects(bucket: str, key_glob: str) -> dict[str, dict[str, Any]]:
    """Objects of ``bucket`` whose keys match ``key_glob``: key -> listing entry."""
    prefix = re.split(r"[*?\[]", key_glob, maxsplit=1)[0]
    rx = _glob_regex(key_glob)
    found: dict[str, dict[str, Any]] = {}
    try:
        for page in _client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                           Prefix=prefix):
            for obj in page.get("Contents", []):
                if rx.match(obj["Key"]) and not obj["Key"].endswith("/"):
                    found[obj["Key"]] = obj
    except SarstackError:
        raise
    except Exception as e:  # botocore's errors: credentials, endpoint, no such bucket
        raise SarstackError(f"s3://{bucket}/{prefix}: cannot list ({e})") from None
    return found


def glob_files(pattern: str | Path) -> list[str]:
    """The files a glob matches, sorted: local paths, or ``/vsis3/bucket/key``
    for an ``s3://`` glob (listed, nothing downloaded). ``**`` spans folders."""
    text = str(pattern)
    if not is_s3(text):
        return sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
    configure_gdal_s3()
    bucket, key_glob = _split(text)
    return sorted(f"{VSI_S3}{bucket}/{k}" for k in _s3_objects(bucket, key_glob))


def fingerprint(path: str | Path) -> str:
    """``size:version`` of one file: ``size:mtime_ns`` on disk, ``size:ETag`` in
    S3 (an object replaced in place gets a new ETag). Raises naming a missing file."""
    text = str(path)
    if is_s3(text):
        bucket, key = _split(text)
        try:
            head = _client().head_object(Bucket=bucket, Key=key)
        except SarstackError:
            raise
        except Exception as e:
            raise SarstackError(f"{text}: cannot stat ({e})") from None
        return f"{head['ContentLength']}:{head['ETag'].strip(chr(34))}"
    try:
        st = os.stat(text)
    except OSError as e:
        raise SarstackError(f"{text}: cannot stat ({e.strerror})") from None
    return f"{st.st_size}:{st.st_mtime_ns}"
