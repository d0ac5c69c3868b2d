# Config validation, paths and input functions shared by every rule file.
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from sarstack.config import (  # noqa: E402
    load_config_file,
    load_schema,
    merge_config,
    validate_config,
)
from sarstack.errors import SarstackError  # noqa: E402


def _fail(msg):
    """One line naming the key or file, exit 2, before any job runs."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


# The shipped config/config.yaml (the demo) is the base only when no --configfile
# is given: a user's config never inherits the demo from it.
if not workflow.overwrite_configfiles:
    try:
        _base = load_config_file(Path(workflow.basedir) / "config" / "config.yaml")
    except SarstackError as _e:
        _fail(_e)
    _merged = merge_config(_base, dict(config))
    config.clear()
    config.update(_merged)

try:
    _validated = validate_config(
        config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    )
except SarstackError as _e:
    _fail(_e)
config.clear()
config.update(_validated)

OUT = config["output_dir"].rstrip("/")
RTC = f"{OUT}/rtc"
DEMO = f"{OUT}/demo"
BENCH = f"{OUT}/benchmarks"
LOGS = f"{OUT}/logs"
ENV = "../../envs/sarstack.yaml"
BLOCK = " ".join(str(b) for b in config["block_shape"])


def _cores():
    """--cores of a local run; None without one (e.g. --lint) or for a cluster executor."""
    try:
        n = int(workflow.cores)
    except Exception:
        return None
    return n if 0 < n < 10_000 else None


CORES = _cores()
AUTO_CHUNKS_NO_CORES = 8  # scatter: auto on a cluster (no --cores): 8 chunks per stage


def n_chunks(n_items):
    """Scatter: jobs per stage. 'auto' fills --cores (at most 64); never more than items."""
    s = config["scatter"]
    if s == "auto":
        n = min(CORES, 64) if CORES else AUTO_CHUNKS_NO_CORES
    else:
        n = int(s)
    return max(1, min(n, n_items))


def chunk_labels(n_items):
    n = n_chunks(n_items)
    return [f"{i}-of-{n}" for i in range(1, n + 1)]


def chunk_threads(n_items):
    """Threads for each of a stage's chunk jobs: the cores the chunks leave free (<= 8)."""
    return max(1, min(8, (CORES or 1) // n_chunks(n_items)))


def opt(flag, value):
    """Command-line option only when the config value is set; values shell-quoted."""
    if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
        return ""
    if isinstance(value, (list, tuple)):
        values = " ".join(shlex.quote(str(v)) for v in value)
        return f"{flag} {values}"
    return f"{flag} {shlex.quote(str(value))}"


JAXCACHE = opt("--jax-cache", config["jax_cache_dir"])


# Jobs call `python`. Without --sdm conda, put the interpreter that runs
# snakemake first on the jobs' PATH, so an un-activated virtualenv still works.
def _uses_conda():
    try:
        return any(
            "conda" in str(m).lower() for m in workflow.deployment_settings.deployment_method
        )
    except AttributeError:
        return False


# sarstack_fail LOG: a failed job's one-line error (the last line of its log) on
# the terminal, above Snakemake's summary, and the job's exit status 2.
_FAIL = (
    'set -euo pipefail; sarstack_fail() {{ echo "$(tail -n 1 "$1")  [log: $1]" >&2; return 2; }}; '
)
# Jobs run `python -m sarstack <stage>` from this checkout's src/ (PYTHONPATH
# set here, once), installed or not, and in a conda environment too.
_PYENV = f'export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / "src"))}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
if not _uses_conda():
    shell.prefix(
        f'export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; {_PYENV}{_FAIL}'
    )
else:
    shell.prefix(f"{_PYENV}{_FAIL}")


wildcard_constraints:
    date=r"\d{8}",
    chunk=r"\d+-of-\d+",


# ---------------------------------------------------------------- RTC helpers
DEMO_ON = config["demo"]["enabled"]


def rtc_is_demo():
    return DEMO_ON and config["rtc"]["inputs"] in (None, "")


def rtc_has_inputs():
    return rtc_is_demo() or config["rtc"]["inputs"] not in (None, "")


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


def rtc_n_pairs():
    from sarstack.dates import make_pairs

    return len(make_pairs(len(rtc_scenes()), config["rtc"]["pairs"]))


def rtc_date_chunks(wildcards=None):
    return chunk_labels(len(rtc_scenes()))


def rtc_pair_chunks(wildcards=None):
    return chunk_labels(rtc_n_pairs())


def rtc_flat_all(wildcards):
    return [f"{RTC}/flat/{c}.json" for c in rtc_date_chunks()]


def rtc_xcorr_all(wildcards):
    return [f"{RTC}/xcorr/{c}.csv" for c in rtc_pair_chunks()]


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
# Inversion blocks (insar.block_shape, its null resolved by validate_config).
IBLOCK = " ".join(str(b) for b in ICFG["block_shape"])


def insar_model():
    """The deformation model of insar.velocity_model (sarstack.velocity.DeformationModel)."""
    from sarstack.velocity import DeformationModel, model_error

    m = ICFG["velocity_model"]
    try:
        return DeformationModel.from_config(m["annual"], m["semiannual"], m["steps"])
    except SarstackError as e:
        _fail(model_error(e))


def insar_model_outputs():
    """The model's rasters beyond velocity.tif / velocity_std.tif."""
    return [f"{INSAR}/{n}.tif" for n in insar_model().output_names()[2:]]


def insar_is_demo():
    return DEMO_ON and ICFG["unwrapped"] in (None, "")


def insar_has_inputs():
    return insar_is_demo() or ICFG["unwrapped"] not in (None, "")


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


def insar_n_block_rows():
    """Block rows of the stack (strips are whole block rows); known after insar_select."""
    import math

    from sarstack.insar import read_ifg_table
    from sarstack.io import read_grid

    used = read_ifg_table(checkpoints.insar_select.get().output[0])[0]  # excluded ones left out
    return math.ceil(read_grid(used[0].path).height / int(IBLOCK.split()[0]))


def insar_strips_all(wildcards):
    return [f"{INSAR}/strips/{c}" for c in chunk_labels(insar_n_block_rows())]


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
        f"{INSAR}/closure_nonzero_count.tif",
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
    """Both branches where enabled and given inputs (or the demo); a branch with
    neither is left out with a note, never run on the demo behind the user's back."""
    out = []
    for name, enabled, has, targets, key in (
        ("rtc", config["rtc"]["enabled"], rtc_has_inputs(), rtc_targets, "rtc.inputs"),
        ("insar", ICFG["enabled"], insar_has_inputs(), insar_targets, "insar.unwrapped"),
    ):
        if enabled and has:
            out += targets()
        elif enabled:
            print(
                f"note: {name} branch skipped: {key} is not set (demo.enabled: true runs the demo)",
                file=sys.stderr,
            )
    return out


def branch_targets(name):
    """Input function of the `rtc` / `insar` targets: a one-line error when asked for
    a branch that has no inputs."""
    has, targets, key = {
        "rtc": (rtc_has_inputs, rtc_targets, "rtc.inputs"),
        "insar": (insar_has_inputs, insar_targets, "insar.unwrapped"),
    }[name]

    def inputs(wildcards):
        if not has():
            _fail(f"config {key}: not set, so the {name} branch has no inputs")
        return targets()

    return inputs


# ---------------------------------------------------------------- errors on the terminal
_STARTED = __import__("time").time()


def report_job_errors():
    """onerror: repeat each failed job's one-line error (its log's last line) at the end."""
    for log_path in sorted(Path(LOGS).rglob("*.log")) if Path(LOGS).is_dir() else []:
        try:
            if log_path.stat().st_mtime < _STARTED:
                continue
            lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if lines and (lines[-1].startswith("error:") or "Error" in lines[-1].split(":")[0]):
            print(f"{lines[-1]}  [{log_path}]", file=sys.stderr)
