"""Inputs from object storage: the two shared OPERA bursts uploaded to a local S3
server (moto, started by the test on 127.0.0.1), the RTC branch run from their
``s3://`` globs, and every table identical to the run from the local files.

Skipped with a reason without ../shared/data or without boto3 and moto
(``pip install -e '.[test]'`` installs both).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SHARED
from test_workflow import write_config

from sarstack import storage

pytestmark = [pytest.mark.realdata, pytest.mark.workflow]

DATA = SHARED
BURSTS = {"land": "opera_rtc_T137-292319-IW2", "sea": "opera_rtc_T137-292318-IW1"}
BUCKET = "sarstack-test"
# Tables that carry no paths; compared whole.
TABLES = ["offsets.csv", "pairs.csv", "tiles.csv", "summary.csv", "dates.csv", "dates_tiles.csv"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_server(land_burst, sea_burst):  # both skip with a reason without ../shared/data
    pytest.importorskip("boto3", reason="boto3 not installed (pip install -e '.[test]')")
    pytest.importorskip("moto", reason="moto not installed (pip install -e '.[test]')")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        client = boto3.client("s3")
        for _ in range(50):  # the server takes a moment to listen
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.2)
        else:
            pytest.fail("the local S3 server did not start")
        for name, folder in BURSTS.items():
            for f in sorted((DATA / folder).rglob("*.tif")):
                key = f"{name}/{f.relative_to(DATA / folder).as_posix()}"
                client.upload_file(str(f), BUCKET, key)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        storage._client.cache_clear()


def _run(tmp: Path, stacks: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = write_config(tmp / "c.yaml", {
        "output_dir": str(tmp / "out"), "demo": {"enabled": False},
        "insar": {"enabled": False},
        "rtc": {"enabled": True, "stacks": stacks, "tiles": [3, 3], "requirement_m": 10.0},
    })  # fmt: skip
    gdal = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_S3_", "AWS_HTTPS",
                                                                     "AWS_VIRTUAL"))}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "rtc", "--cores", "2", "--configfile", str(cfg),
         "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp)],
        capture_output=True, text=True, env={**gdal, **env}, timeout=900,
    )  # fmt: skip


def test_glob_matches_s3_keys_like_local_glob(s3_server):
    local = storage.glob_files(str(DATA / BURSTS["land"] / "**" / "*_VV.tif"))
    remote = storage.glob_files(f"s3://{BUCKET}/land/**/*_VV.tif")
    assert len(remote) == len(local) == 21
    assert [Path(p).name for p in remote] == [Path(p).name for p in local]
    assert all(p.startswith(f"/vsis3/{BUCKET}/land/") for p in remote)
    assert storage.glob_files(f"s3://{BUCKET}/land/*_VV.tif") == []  # '*' stays in one folder
    fp = storage.fingerprint(remote[0])
    assert fp.split(":")[0] == str(Path(local[0]).stat().st_size)


def test_rtc_from_s3_equals_local_run(tmp_path, s3_server):
    local = {f"{n}_burst": str(DATA / b / "**" / "*_VV.tif") for n, b in BURSTS.items()}
    remote = {f"{n}_burst": f"s3://{BUCKET}/{n}/**/*_VV.tif" for n in BURSTS}
    runs = {}
    for kind, stacks in (("local", local), ("s3", remote)):
        p = _run(tmp_path / kind, stacks, s3_server)
        assert p.returncode == 0, p.stderr[-3000:]
        runs[kind] = tmp_path / kind / "out" / "rtc"
    scenes = pd.read_csv(runs["s3"] / "land_burst" / "scenes.csv")
    assert scenes["path"].str.startswith(f"/vsis3/{BUCKET}/land/").all()
    assert not list((tmp_path / "s3").rglob("*_VV.tif"))  # nothing downloaded
    for stack in remote:
        for name in TABLES:
            a = pd.read_csv(runs["local"] / stack / name)
            b = pd.read_csv(runs["s3"] / stack / name)
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f"{stack}/{name}")
    a = pd.read_csv(runs["local"] / "stacks_summary.csv")
    b = pd.read_csv(runs["s3"] / "stacks_summary.csv")
    cols = [c for c in a.columns if "path" not in c and "input" not in c]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
