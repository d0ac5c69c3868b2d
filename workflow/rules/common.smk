# Config validation, paths and input functions shared by every rule file.
import os
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from sarstack.config import load_schema, validate_config  # noqa: E402
from sarstack.errors import SarstackError  # noqa: E402

try:
    _validated = validate_config(
        config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    )
except SarstackError as _e:
    # One line naming the key, non-zero exit, before any job runs.
    print(f"error: {_e}", file=sys.stderr)
    sys.exit(2)
config.clear()
config.update(_validated)

OUT = config["output_dir"].rstrip("/")
RTC = f"{OUT}/rtc"
DEMO = f"{OUT}/demo"
BENCH = f"{OUT}/benchmarks"
LOGS = f"{OUT}/logs"
SCRIPTS = str(Path(workflow.basedir) / "workflow" / "scripts")
ENV = "../../envs/sarstack.yaml"
BLOCK = " ".join(str(b) for b in config["block_shape"])
JAXCACHE = "" if config["jax_cache_dir"] is None else f"--jax-cache '{config['jax_cache_dir']}'"


# Jobs call `python`. Without --sdm conda, put the interpreter that runs
# snakemake first on the jobs' PATH, so an un-activated virtualenv still works.
def _uses_conda():
    try:
        return any("conda" in str(m).lower() for m in workflow.deployment_settings.deployment_method)
    except AttributeError:
        return False


if not _uses_conda():
    shell.prefix(f'export PATH="{os.path.dirname(sys.executable)}:$PATH"; ')

wildcard_constraints:
    date=r"\d{8}",
    ref=r"\d{8}",
    sec=r"\d{8}",


# ---------------------------------------------------------------- RTC helpers
def rtc_is_demo():
    return config["rtc"]["inputs"] in (None, "")


def rtc_pattern():
    if rtc_is_demo():
        return f"{DEMO}/rtc/**/*_VV.tif"
    return config["rtc"]["inputs"]


def rtc_select_input(wildcards):
    """Demo: the generator's truth table; real data: the matched files (so new
    or updated files trigger a rerun)."""
    if rtc_is_demo():
        return f"{DEMO}/rtc/truth.csv"
    import glob

    return sorted(glob.glob(config["rtc"]["inputs"], recursive=True))


def rtc_scenes():
    """Scenes table written by the rtc_select checkpoint (date key -> path)."""
    path = checkpoints.rtc_select.get().output.scenes
    return pd.read_csv(path, dtype=str)


def rtc_dates():
    return list(rtc_scenes()["key"])


def rtc_scene_path(wildcards):
    s = rtc_scenes()
    return s.loc[s["key"] == wildcards.date, "path"].iloc[0]


def rtc_pairs():
    from sarstack.dates import make_pairs

    keys = rtc_dates()
    return [(keys[i], keys[j]) for i, j in make_pairs(len(keys), config["rtc"]["pairs"])]


def rtc_flat_all(wildcards):
    return [f"{RTC}/flat/{d}.tif" for d in rtc_dates()]


def rtc_xcorr_all(wildcards):
    return [f"{RTC}/xcorr/{r}_{s}.csv" for r, s in rtc_pairs()]


# ---------------------------------------------------------------- targets
def rtc_targets():
    out = [
        f"{RTC}/offsets.csv",
        f"{RTC}/pairs.csv",
        f"{RTC}/tiles.csv",
        f"{RTC}/summary.csv",
        f"{RTC}/plots/pair_offsets.png",
    ]
    if rtc_is_demo():
        out.append(f"{DEMO}/rtc_accuracy.csv")
    return out


def all_targets():
    out = []
    if config["rtc"]["enabled"]:
        out += rtc_targets()
    return out
