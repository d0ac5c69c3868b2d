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
        f"{RTC}/dates.csv",
    ]
    if rtc_is_demo():
        out.append(f"{DEMO}/rtc_accuracy.csv")
    return out




# ---------------------------------------------------------------- InSAR helpers
INSAR = f"{OUT}/insar"
ICFG = config["insar"]
IBLOCK = " ".join(str(b) for b in (ICFG["block_shape"] or config["block_shape"]))


def insar_is_demo():
    return ICFG["unwrapped"] in (None, "")


def insar_globs():
    """(unwrapped, conncomp, correlation) globs, the demo's when unconfigured."""
    if insar_is_demo():
        return (f"{DEMO}/insar/ifgs/*.unw.tif", None, f"{DEMO}/insar/cor/*.cor.tif")
    return (ICFG["unwrapped"], ICFG["conncomp"], ICFG["correlation"])


def insar_select_input(wildcards):
    if insar_is_demo():
        return [f"{DEMO}/insar/truth.csv"]
    import glob

    files = []
    for pattern in insar_globs():
        if pattern:
            files += sorted(glob.glob(pattern, recursive=True))
    return files


def opt(flag, value):
    """Command-line option only when the config value is set."""
    if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
        return ""
    if isinstance(value, (list, tuple)):
        return f"{flag} " + " ".join(str(v) for v in value)
    return f"{flag} '{value}'"


def insar_aux_files():
    return [f for f in (ICFG["mask"],) if f]


def insar_has(key):
    """Whether the stack has companion rasters of this kind (the demo has correlation)."""
    return bool(insar_globs()[{"conncomp": 1, "correlation": 2}[key]])


def insar_quality():
    """Reference-point quality: the configured raster, else the mean correlation."""
    if ICFG["quality"]:
        return ICFG["quality"]
    return f"{INSAR}/correlation_mean.tif" if insar_has("correlation") else []


def insar_targets():
    out = [
        f"{INSAR}/velocity.tif",
        f"{INSAR}/velocity_std.tif",
        f"{INSAR}/plots/velocity.png",
    ]
    if insar_has("correlation"):
        out.append(f"{INSAR}/correlation_mean.tif")
    if insar_has("conncomp"):
        out.append(f"{INSAR}/conncomp_count.tif")
    if ICFG["extra_reference_date"]:
        out.append(f"{INSAR}/timeseries_rereferenced.csv")
    if insar_is_demo():
        out.append(f"{DEMO}/insar_accuracy.csv")
    return out


def all_targets():
    out = []
    if config["rtc"]["enabled"]:
        out += rtc_targets()
    if config["insar"]["enabled"]:
        out += insar_targets()
    return out
