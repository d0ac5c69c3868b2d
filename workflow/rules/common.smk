# Config validation, paths and input functions shared by every rule file.
import os
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from sarstack.config import (  # noqa: E402
    load_config_file,
    load_schema,
    merge_config,
    validate_config,
)
from sarstack.errors import SarstackError  # noqa: E402
from sarstack.options import config_args  # noqa: E402
from sarstack.options import stage_opts as _stage_opts  # noqa: E402
from sarstack.storage import configure_gdal_s3  # noqa: E402


def _params_without_pandas():
    """Snakemake's rerun check serializes each job's params through a function
    that imports pandas first (to hash pandas objects): 0.4 s of importing
    at every run's start (0.25 s less workflow time around the fused 1024²
    job, measured), for params that are never pandas objects. Until
    pandas is imported by something else no pandas object can exist, so the
    plain serializer gives the same records; after that Snakemake's own runs.
    Left alone where Snakemake's internals differ (tests/test_workflow.py)."""
    try:
        from snakemake.persistence import PersistenceBase
    except ImportError:
        return
    own = getattr(PersistenceBase, "_serialize_param_pandas", None)
    if own is None or getattr(own, "_sarstack", False):
        return

    def serialize(self, value):
        if "pandas" not in sys.modules:
            return self._serialize_param_builtin(value)
        return own(self, value)

    serialize._sarstack = True
    PersistenceBase._serialize_param_pandas = serialize


_params_without_pandas()


# s3:// inputs: GDAL's S3 settings from AWS_ENDPOINT_URL, set here so every job
# (a child of this process) inherits them.
configure_gdal_s3()


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

_STARTED = __import__("time").time()  # errors in logs since then are this run's
OUT = config["output_dir"].rstrip("/")
RTC = f"{OUT}/rtc"
DEMO = f"{OUT}/demo"
BENCH = f"{OUT}/benchmarks"
LOGS = f"{OUT}/logs"
ENV = "../../envs/sarstack.yaml"


def acquire_output_lock():
    """onstart: one run per output_dir ({OUT}/.sarstack.lock; Snakemake's own lock
    is per working directory). A second run is refused with one line."""
    from sarstack import runlock

    if workflow.is_main_process:
        try:
            runlock.acquire(OUT)
        except SarstackError as e:
            _fail(e)


def release_output_lock():
    """onsuccess / onerror: remove this run's output_dir lock."""
    from sarstack import runlock

    if workflow.is_main_process:
        runlock.release(OUT)


def stop_scheduler_wakeups():
    """onsuccess / onerror: cancel the scheduler's pending wake-up timers.

    Snakemake's scheduler (9.x, whose job rate limit is on by default:
    --max-jobs-per-timespan 100/1s) starts a 1 s threading.Timer after each
    scheduling pass, not a daemon thread: the last one was still waiting when
    the run ended, and Python waited for it before exiting, so every run took
    up to 1 s longer than its work (1.0 s on a one-rule workflow here). The
    run is over when these handlers run; the timers have nothing left to wake."""
    import threading

    for t in threading.enumerate():
        origin = str(getattr(getattr(t, "function", None), "__module__", ""))
        if isinstance(t, threading.Timer) and origin.startswith("snakemake.scheduling"):
            t.cancel()


def _cores():
    """--cores of a local run. None for --lint, for a cluster executor (SLURM) and
    inside the cluster's jobs, where --cores is not what the job was given: a
    job's threads must be the same where it is planned and where it runs."""
    try:
        if not workflow.local_exec or workflow.remote_exec:
            return None
        n = int(workflow.cores)
    except Exception:
        return None
    return n if 0 < n < 10_000 else None


CORES = _cores()


def _cap_slurm_polling():
    """With the SLURM executor, make the profile's seconds-between-status-checks
    the longest wait between two status checks.

    snakemake-executor-plugin-slurm (2.x) waits init-seconds-before-status-checks
    after a submission, then 10 s more after every check that finds no job
    finished (5, 20, 45 s, ... up to 180 s), and ignores the profile's interval:
    a group job that ends at 21 s was seen at 45 s, the most of the 2-4x that
    the demo took on a one-node cluster. The back-off is kept, capped at the
    profile's interval (profiles/slurm: 2 s; a site that wants fewer queries
    sets a larger one there). Main process only. The executor is not known yet
    when the Snakefile is read (workflow.executor_plugin is None then), so the
    plugin's class is patched whenever it is installed: only its instances
    read the property; a no-op without the plugin or that attribute."""
    try:
        if not workflow.is_main_process:
            return
        from snakemake_executor_plugin_slurm import Executor
    except Exception:
        return
    prop = getattr(Executor, "next_seconds_between_status_checks", None)
    if not isinstance(prop, property) or prop.fset is None:
        return

    def capped(self, value, _set=prop.fset):
        # the profile's interval, known once the executor runs (not at parse time)
        cap = self.workflow.remote_execution_settings.seconds_between_status_checks
        _set(self, value if value is None or not cap or cap <= 0 else min(value, cap))

    Executor.next_seconds_between_status_checks = property(prop.fget, capped)


_cap_slurm_polling()
# Threads of a multi-threaded job on a cluster (config cluster_threads): fixed
# where the job is planned and where it runs, and at most a node's CPUs.
CLUSTER_JOB_THREADS = int(config["cluster_threads"])


def job_threads(cap=8):
    """Threads of a multi-threaded whole-stack job: --cores (at most ``cap``)
    locally, CLUSTER_JOB_THREADS on a cluster."""
    return max(1, min(cap, CORES)) if CORES else CLUSTER_JOB_THREADS


def n_chunks(n_items, px_per_item, stage):
    """Chunk jobs of a scattered stage: sarstack.chunks, sized to the work."""
    from sarstack.chunks import n_chunks as _n

    return _n(config["scatter"], n_items, px_per_item, stage)


def chunk_labels(n_items, px_per_item, stage):
    from sarstack.chunks import chunk_labels as _labels

    return _labels(config["scatter"], n_items, px_per_item, stage)


def insar_gather_outputs():
    """The insar_gather rule's rasters, from the output spec
    (sarstack.insar.INVERSION_OUTPUTS): a folder for a raster per date or per
    ifg, a file otherwise, those behind an inversion option only when it is on."""
    from sarstack.insar.outputs import INVERSION_OUTPUTS

    out = {}
    for o in INVERSION_OUTPUTS:
        if o.option is not None and not ICFG[o.option]:
            continue
        path = f"{INSAR}/{o.final}"
        if o.per != "pixel":
            path = directory(path)
        elif o.report:
            path = report(path, category="InSAR", caption=f"../report/{o.report}")
        out[o.name] = path
    return out


def chunk_threads(n_items, px_per_item, stage, share=1):
    """Threads for each of a stage's chunk jobs: the cores the chunks (of
    ``share`` stacks side by side) leave free, at most 8. Threads never change
    a result and never trigger a rerun."""
    if not CORES:
        return CLUSTER_JOB_THREADS
    n = n_chunks(n_items, px_per_item, stage) * share
    return max(1, min(8, CORES // n))


class _CommandFormatter(__import__("string").Formatter):
    """str.format with Snakemake's ``:q`` (shell-quoted; a list item by item)."""

    def format_field(self, value, spec):
        if spec == "q":
            items = value if isinstance(value, (list, tuple)) else [value]
            return " ".join(shlex.quote(str(v)) for v in items)
        return format(value, spec)


def format_command(template, **fields):
    """A rule's command template filled in here, as Snakemake would fill it for
    a job: ``fields`` maps ``params``, ``output``, ``log`` ... to dicts."""
    from types import SimpleNamespace

    ns = {k: SimpleNamespace(**v) if isinstance(v, dict) else v for k, v in fields.items()}
    return _CommandFormatter().format(template, **ns)


def input_option(flag, name):
    """Params function: ``[flag, path]`` of the rule's optional input ``name``
    (a list of at most one file), ``[]`` without it; the command quotes it,
    ``{params.NAME:q}``."""
    return lambda wildcards, input: [flag, getattr(input, name)[0]] if getattr(input, name) else []


def stage_opts(stage):
    """The stage's config-driven options (sarstack.options: the schema's keys it
    takes, under its flags), shell-quoted, for its rule's command."""
    return _stage_opts(stage, config)


# Jobs call `python`. Without --sdm conda, put the interpreter that runs
# snakemake first on the jobs' PATH, so an un-activated virtualenv still works.
def _uses_conda():
    try:
        return any(
            "conda" in str(m).lower() for m in workflow.deployment_settings.deployment_method
        )
    except AttributeError:
        return False


# sarstack_fail LOG: a failed stage's job exits with status 2 and prints nothing:
# its one-line error (the last line of LOG) is printed once, at the end of the
# run, by the onerror handler report_job_errors (which also reaches the
# terminal when the job ran elsewhere, e.g. on SLURM).
_FAIL = "set -euo pipefail; sarstack_fail() {{ return 2; }}; "
# Jobs run `python -m sarstack <stage>` from this checkout's src/ (PYTHONPATH
# set here, once), installed or not, and in a conda environment too.
_PYENV = f'export PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / "src"))}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
if not _uses_conda():
    shell.prefix(
        f'export PATH={shlex.quote(os.path.dirname(sys.executable))}:"$PATH"; {_PYENV}{_FAIL}'
    )
else:
    shell.prefix(f"{_PYENV}{_FAIL}")


# ---------------------------------------------------------------- rule boilerplate
# Every rule's log, benchmark, resources and failure hook come from here:
#
#     log:
#         stage_log("insar/select"),
#     benchmark:
#         stage_benchmark("insar/select")
#     resources:
#         **stage_resources("insar_select"),
#     shell:
#         stage_shell("python -m sarstack insar_select ... --out {output:q}")


def stage_log(name):
    """A job's log, {output_dir}/logs/NAME.log; NAME as "insar/select" or
    "rtc/{stack}flatten_{chunk}" (wildcards as they are, not doubled)."""
    return f"{LOGS}/{name}.log"


def stage_benchmark(name):
    """A job's benchmark table, {output_dir}/benchmarks/NAME.tsv (NAME as stage_log's)."""
    return f"{BENCH}/{name}.tsv"


def stage_shell(cmd, log="log", warnings_from=None):
    """A rule's command: ``cmd`` with its stderr to the job's log and, when it
    fails, the failure hook of _FAIL (above). ``log``: the log's field
    ("log.batch" for a job with several logs); ``warnings_from``: logs whose
    WARNING lines are then copied to the terminal. The returned text is what
    Snakemake compares to rerun a job whose code changed: a change here reruns
    every finished job (tests/test_rule_boilerplate.py pins it)."""
    # The log's path quoted by Snakemake (":q"): "{log:q}", "{log.batch:q}".
    quoted_log = "{{{}:q}}".format(log)
    hook = f" 2> {quoted_log} || sarstack_fail {quoted_log}"
    if warnings_from:
        hook += f"; grep -h ' WARNING ' {warnings_from} >&2 || true"
    return cmd + hook


def _sized(mem_mb, runtime):
    """STAGE_RESOURCES' entries of one memory size; ``runtime``: minutes per stage."""
    return {stage: dict(mem_mb=mem_mb, runtime=minutes) for stage, minutes in runtime.items()}


# Each rule's job resources, grouped by memory: mem_mb (MB, with the peak or
# the data it rests on) and runtime (minutes; rtc_batch_N's is (fixed, per
# stack)). A cluster executor (profiles/slurm) asks for them.
STAGE_RESOURCES = {
    **_sized(
        mem_mb=500,
        runtime={
            "demo_rtc_check": 5,
            # measured peak 0.11 GB (insar-1024x60), with a margin
            "insar_select": 10,
            # tables only, with a margin
            "quality_dates": 10,
            # measured peak 0.11 GB (rtc-4096x24, rtc-many), with a margin
            "rtc_select": 10,
            # measured peak 0.16 GB (rtc-4096x24, rtc-many), with a margin;
            # the tile layout (rtc_tiles, tables of a few MB) first
            "rtc_aggregate": 20,
            # measured peak 0.16-0.22 GB per stack, one stack at a time (rtc-many;
            # 0.22 GB for 30 x 1400², near the largest stack that is batched)
            "rtc_batch": (10, 10),
            # measured peak 0.14 GB (rtc-many), with a margin
            "rtc_stacks_summary": 10,
        },
    ),
    **_sized(
        mem_mb=800,
        runtime={
            # measured peak 0.17 GB at 4096², 0.39 GB at 8192², with a margin
            "rtc_flatten": 20,
            # measured peak 0.26 GB at 4096², 0.42 GB at 8192² (4 and 1 pairs per
            # job), with a margin
            "rtc_xcorr": 30,
        },
    ),
    **_sized(
        mem_mb=1000,
        runtime={
            "demo_rtc_stack": 10,
            "demo_insar_stack": 10,
            "demo_insar_check": 5,
            "insar_correlation_mean": 20,
            "insar_conncomp_count": 20,
            # one insar.block_shape block of every ifg and every date's delay at a time
            "insar_troposphere": 20,
            # one insar.block_shape block of every ifg at a time
            "insar_deramp": 20,
            # measured peak 0.18 GB (insar-1024x60); the coherence mask holds 1
            # byte per pixel, with a margin
            "insar_gather": 60,
            # measured peak 0.46 GB (insar-1024x60, with the plots), with a margin
            "insar_velocity": 20,
            "insar_rereference": 20,
            "rtc_reflectors": 10,
        },
    ),
    **_sized(
        mem_mb=2000,
        runtime={
            # every ifg of one insar.block_shape block at a time (897 ifgs x 512²
            # float64 was 1.9 GB)
            "insar_reference": 20,
            # one insar.block_shape block of every ifg and its triangles' closures at a time
            "insar_unwrap_correction": 60,
            # measured peak 0.94 GB at L2, 1.27 GB at L1 (insar-1024x60), with a margin
            "insar_invert": 60,
            # a small stack's whole chain, one stage at a time: the largest is its
            # one inversion strip (as insar_invert)
            "insar_small": 60,
            # every ifg of one insar.block_shape block at a time, as insar_reference
            "insar_head": 20,
            # insar_gather then insar_velocity and its plots, one at a time
            # (measured peak 0.87 GB at 2048² x 60 dates, the velocity's)
            "insar_tail": 60,
            # one strip of the whole stack, block by block (insar_invert's 2 GB), then the gather
            "insar_injection": 120,
            # one inversion strip of the whole stack at a time (as insar_invert), the
            # reference candidates' rasters (as insar_reference), with a margin
            "insar_reference_sensitivity": 120,
        },
    ),
}


def stage_resources(stage, stacks=1):
    """A rule's ``resources:`` (``**stage_resources("insar_select")``): the
    stage's mem_mb and runtime in STAGE_RESOURCES, a (fixed, per stack) runtime
    that of a job of ``stacks`` stacks."""
    res = dict(STAGE_RESOURCES[stage])
    if isinstance(res["runtime"], tuple):
        fixed, per_stack = res["runtime"]
        res["runtime"] = fixed + per_stack * stacks
    return res


wildcard_constraints:
    date=r"\d{8}",
    chunk=r"\d+-of-\d+",
    stack=r"(?:[A-Za-z0-9][A-Za-z0-9_-]*/)?",


# ---------------------------------------------------------------- RTC helpers
# The RTC rules all carry the wildcard {stack} - "" for the one stack of
# rtc.inputs (or the demo), whose outputs go straight under {output_dir}/rtc/,
# and "NAME/" for each stack of rtc.stacks ({output_dir}/rtc/NAME/).
DEMO_ON = config["demo"]["enabled"]
RCFG = config["rtc"]


def rtc_is_demo():
    return DEMO_ON and not RCFG["inputs"] and not RCFG["stacks"]


def rtc_stacks():
    """{stack wildcard value: input glob}: "" for rtc.inputs or the demo, "NAME/" per rtc.stacks."""
    if RCFG["stacks"]:
        return {f"{name}/": glob for name, glob in RCFG["stacks"].items()}
    if rtc_is_demo():
        return {"": f"{DEMO}/rtc/**/*_VV.tif"}
    return {"": RCFG["inputs"]} if RCFG["inputs"] else {}


RTC_STACKS = rtc_stacks()
STACK_NAMES = {s: s[:-1] for s in RTC_STACKS}  # wildcard value -> name ("" for the one stack)
# Stacks run side by side: under scatter: auto they share the cores.
RTC_SHARE = max(1, len(RTC_STACKS))


def rtc_fused_stacks():
    """The stacks whose every scattered stage is one chunk (from the first
    scene's size and the number of files, read now; for the demo, whose
    scenes do not exist yet, from demo.rtc_dates and demo.rtc_shape): they run
    in rtc_batch_N jobs (rtc_batches), the others as per-stage and per-chunk
    jobs. Only the job layout depends on this; results are identical for
    every chunk count."""
    if not RCFG["fuse_small_stacks"]:
        return set()
    from sarstack.network import make_pairs
    from sarstack.io import read_grid

    fused = set()
    for stack, pattern in RTC_STACKS.items():
        try:
            if rtc_is_demo():
                n_files = config["demo"]["rtc_dates"]
                px = config["demo"]["rtc_shape"][0] * config["demo"]["rtc_shape"][1]
            else:
                files = _matched(pattern)
                n_files = len(files)
                if n_files < 2:
                    continue  # rtc_select says what is wrong
                g = read_grid(files[0])
                px = g.width * g.height
            n_pairs = len(make_pairs(n_files, RCFG["pairs"]))
        except SarstackError:
            continue
        if n_chunks(n_files, px, "flatten") == 1 and n_chunks(n_pairs, px, "xcorr") == 1:
            fused.add(stack)
    return fused


def _stacks_rx(stacks):
    """A wildcard regex matching exactly these stack values (never, when none)."""
    import re

    if not stacks:
        return "(?!)"
    return "(?:" + "|".join(re.escape(s) for s in sorted(stacks)) + ")"


def rtc_has_inputs():
    return bool(RTC_STACKS)


def rtc_pattern(wildcards):
    return RTC_STACKS[wildcards.stack]


def _matched(pattern):
    """The files a glob matches, listed once per Snakemake process."""
    from sarstack import storage

    if pattern not in _MATCHED:
        _MATCHED[pattern] = storage.glob_files(pattern)
    return _MATCHED[pattern]


_MATCHED = {}


def local_inputs(paths):
    """The paths Snakemake can watch: S3 objects are no rule inputs (Snakemake
    would look for local files); their fingerprints (params) rerun the select."""
    from sarstack import storage

    return [p for p in paths if not storage.is_s3(p)]


def rtc_select_input(wildcards):
    """Demo: the generator's truth table; real data: the matched files (so new
    or updated files trigger a rerun)."""
    return rtc_stack_inputs(wildcards.stack)


def rtc_stack_inputs(stack):
    """A stack's matched local files (S3 objects are not rule inputs); the
    demo's: the generator's truth table."""
    if rtc_is_demo():
        return [f"{DEMO}/rtc/truth.csv"]
    return local_inputs(_matched(RTC_STACKS[stack]))


def rtc_stack_key(stack):
    """The config key of a stack's glob, for the one-line errors."""
    return f"rtc.stacks.{STACK_NAMES[stack]}" if stack else "rtc.inputs"


def inputs_fingerprint(paths):
    """Digest of each input's path, size and mtime_ns: a param of the select
    checkpoints, so a file replaced in place reruns them even when the new file
    is older than their outputs (cp -p, rsync -t, mv), which Snakemake's mtime
    check misses. One stat per file, nothing read."""
    import hashlib

    from sarstack import storage

    if not paths:
        return ""
    h = hashlib.sha256()
    for p in paths:
        try:
            # size and mtime_ns (size and ETag in S3), in the digest's first form
            size, version = storage.fingerprint(p).split(":", 1)
            h.update(f"{p}\0{size}\0{version}\n".encode())
        except SarstackError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def rtc_select_fingerprint(wildcards):
    """The matched files' fingerprint; "" for the demo, whose scenes the workflow writes."""
    return rtc_stack_fingerprint(wildcards.stack)


def rtc_stack_fingerprint(stack):
    """The matched files' fingerprint; "" for the demo, whose scenes the workflow writes."""
    return "" if rtc_is_demo() else inputs_fingerprint(_matched(RTC_STACKS[stack]))


def rtc_scenes(wildcards):
    """Rows of the scenes table written by the stack's rtc_select checkpoint."""
    from sarstack import stagefiles

    path = checkpoints.rtc_select.get(stack=wildcards.stack).output.scenes
    return stagefiles.read_scenes(path)


def rtc_n_pairs(wildcards):
    from sarstack.network import make_pairs

    return len(make_pairs(len(rtc_scenes(wildcards)), RCFG["pairs"]))


def rtc_grid_px(wildcards):
    """Pixels of the stack's union grid (grid.json of its rtc_select checkpoint)."""
    from sarstack import stagefiles

    path = checkpoints.rtc_select.get(stack=wildcards.stack).output.grid
    height, width = stagefiles.read_grid_size(path)
    return width * height


RTC_FUSED = rtc_fused_stacks()
RTC_CHUNKED_RX = _stacks_rx(set(RTC_STACKS) - RTC_FUSED)

#: Most small stacks in one rtc_batch job when rtc.stacks_per_job is auto: a
#: failed stack stops the rest of its batch, and a changed one reruns it.
MAX_STACKS_PER_JOB = 8


def rtc_batches():
    """The small stacks (RTC_FUSED), in config order, in consecutive batches:
    of rtc.stacks_per_job, or (auto) as few as hold at most MAX_STACKS_PER_JOB
    each, their sizes within one of each other. A batch is one rtc_batch_N job
    (rtc.smk). The batches follow from the list of small stacks alone (not
    from --cores: a job whose command changed would rerun); only the job
    layout depends on them."""
    small = [s for s in RTC_STACKS if s in RTC_FUSED]
    if not small:
        return []
    per = RCFG["stacks_per_job"]
    if per:
        return [small[i : i + per] for i in range(0, len(small), per)]
    n = -(-len(small) // MAX_STACKS_PER_JOB)
    return [small[len(small) * i // n : len(small) * (i + 1) // n] for i in range(n)]


RTC_BATCHES = rtc_batches()


def rtc_scene_chunks(wildcards):
    """(scenes, pixels each) of the superset/flatten scatter."""
    return len(rtc_scenes(wildcards)), rtc_grid_px(wildcards), "flatten"


def rtc_pair_chunks(wildcards):
    """(pairs, pixels each) of the xcorr scatter."""
    return rtc_n_pairs(wildcards), rtc_grid_px(wildcards), "xcorr"


def rtc_labels(wildcards, chunks):
    """Chunk labels of a stack's scatter; "1-of-1" for a small stack (rtc_batch_N)."""
    if wildcards.stack in RTC_FUSED:
        return ["1-of-1"]
    return chunk_labels(*chunks(wildcards))


_TILE_WARNED = set()


def rtc_flat_all(wildcards):
    grid = checkpoints.rtc_select.get(stack=wildcards.stack).output.grid
    if wildcards.stack not in _TILE_WARNED:  # tiles too small: said once, on the terminal
        _TILE_WARNED.add(wildcards.stack)
        from sarstack.summary import tile_size_warning

        warn = tile_size_warning(grid, RCFG["tiles"])
        if warn:
            where = f" (stack {STACK_NAMES[wildcards.stack]})" if wildcards.stack else ""
            print(f"{warn}{where}", file=sys.stderr)
    chunks = rtc_labels(wildcards, rtc_scene_chunks)
    return [f"{RTC}/{wildcards.stack}flat/{c}.json" for c in chunks]


def rtc_xcorr_all(wildcards):
    chunks = rtc_labels(wildcards, rtc_pair_chunks)
    return [f"{RTC}/{wildcards.stack}xcorr/{c}.csv" for c in chunks]


# Injection-recovery (rtc.injection): each xcorr chunk also writes the table of
# its pairs measured with known shifts injected, and the aggregate job ends
# with rtc_injection, which compares them with the stack's own dates.csv.
RTC_INJECTION = RCFG["injection"]


def rtc_injected_path(xcorr):
    """The injected twin of an xcorr chunk table."""
    return re.sub(r"\.csv$", ".injected.csv", str(xcorr))


def rtc_injected_all(wildcards):
    return (
        [rtc_injected_path(p) for p in rtc_xcorr_all(wildcards)] if RTC_INJECTION["enabled"] else []
    )


def rtc_inject_args(xcorr):
    """rtc_xcorr's injection options for the chunk table ``xcorr`` ("" when off)."""
    if not RTC_INJECTION["enabled"]:
        return ""
    return format_command(
        "--out-injected {p:q} --inject-max-shift-px {m} --inject-seed {s}",
        p=rtc_injected_path(xcorr),
        m=RTC_INJECTION["max_shift_px"],
        s=RTC_INJECTION["seed"],
    )


RTC_TERRAIN = bool(RCFG["dem"] or RCFG["incidence"])


def rtc_terrain_part(out, grid, stack):
    """The aggregate chain's terrain split, rtc_terrain ("" without rtc.dem or
    rtc.incidence); ``out``: rtc_aggregate_outputs of the stack."""
    if not RTC_TERRAIN:
        return ""
    return format_command(
        f" :: {RTC_TERRAIN_CMD}",
        opts=stage_opts("rtc_terrain"),
        o=dict(out),
        g=grid,
        s=STACK_NAMES.get(stack, stack.rstrip("/")),
    )


def rtc_terrain_fingerprint(stack):
    """The fingerprint of the stack's DEM and incidence rasters ("{stack}" filled in)."""
    name = STACK_NAMES.get(stack, stack.rstrip("/"))
    paths = [p.replace("{stack}", name) for p in (RCFG["dem"], RCFG["incidence"]) if p]
    return inputs_fingerprint([p for p in paths if os.path.exists(p)])


def rtc_injection_part(injected, out, grid):
    """The aggregate chain's last part, rtc_injection ("" when off); ``out``:
    rtc_aggregate_outputs of the stack."""
    if not RTC_INJECTION["enabled"]:
        return ""
    return format_command(
        f" :: {RTC_INJECTION_CMD}",
        o=dict(out),
        g=grid,
        opts=stage_opts("rtc_injection"),
        inj=list(injected),
    )


def rtc_reflectors_file():
    """The point targets of the absolute evaluation: rtc.reflectors, the demo's
    targets (demo.rtc_point_targets > 0), else None (no absolute evaluation)."""
    if RCFG["reflectors"]:
        return RCFG["reflectors"]
    if rtc_is_demo() and config["demo"]["rtc_point_targets"] > 0:
        return f"{DEMO}/rtc/reflectors.csv"
    return None


# What rtc_stacks_summary reads of each stack.
STACK_SUMMARY_INPUTS = ["summary.csv", "pairs.csv", "scenes.csv"]
if rtc_reflectors_file():
    STACK_SUMMARY_INPUTS.append("absolute.csv")


def stacks_summary_args(wildcards):
    """rtc_stacks_summary's --stack options, one per stack of rtc.stacks: a
    list, quoted item by item by the rule's ``{params.stacks:q}``."""
    return [a for s, name in STACK_NAMES.items() for a in ("--stack", name, f"{RTC}/{s}")]


def write_stacks_summary_after_failure():
    """onerror of a many-stack run: still write stacks_summary.csv, naming the
    stacks that failed (with their one-line error) or did not finish."""
    import subprocess

    if not (RCFG["enabled"] and RCFG["stacks"]):
        return
    cmd = [sys.executable, "-m", "sarstack", "rtc_stacks_summary"]
    for s, name in STACK_NAMES.items():
        cmd += ["--stack", name, f"{RTC}/{s}"]
    cmd += ["--logs", f"{LOGS}/rtc", "--since", str(_STARTED)]
    cmd += config_args("rtc_stacks_summary", config)
    if rtc_reflectors_file():
        cmd.append("--absolute")
    cmd += ["--out", f"{RTC}/stacks_summary.csv", "--out-overall", f"{RTC}/stacks_overall.csv"]
    cmd += ["--plot", f"{RTC}/stacks_summary.png"]
    env = dict(os.environ, PYTHONPATH=str(Path(workflow.basedir) / "src"))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode == 0:
        print(f"stacks summary (with the failed stacks): {RTC}/stacks_summary.csv", file=sys.stderr)
    else:
        print(f"stacks summary not written: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)


# The demo's point targets and their absolute check (demo.rtc_point_targets > 0).
_DEMO_POINTS = rtc_is_demo() and config["demo"]["rtc_point_targets"] > 0
DEMO_RTC_REFLECTORS = {"reflectors": f"{DEMO}/rtc/reflectors.csv"} if _DEMO_POINTS else {}
DEMO_RTC_ABSOLUTE_IN = {"absolute": f"{RTC}/absolute.csv"} if _DEMO_POINTS else {}
DEMO_RTC_ABSOLUTE_OUT = (
    {
        "absolute": report(
            f"{DEMO}/rtc_absolute_accuracy.csv",
            category="Demo accuracy",
            caption="../report/demo_rtc_absolute_accuracy.rst",
        )
    }
    if _DEMO_POINTS
    else {}
)


def demo_absolute_args(wildcards, input, output):
    """demo_rtc_check's options for the absolute check (with the demo's point
    targets): a list, quoted by the command's ``{params.absolute:q}``."""
    if "absolute" not in output.keys():
        return []
    return [*path_option("--absolute", input.absolute),
            *path_option("--out-absolute", output.absolute)]  # fmt: skip


# Outputs and commands of the RTC rules (rtc.smk), here for snakemake --lint.
def rtc_aggregate_outputs(stack):
    """rtc_aggregate's outputs (tables, verdict, plots) for one stack: "{stack}"
    in the per-stage rule, a stack's wildcard value in rtc_batch_*."""
    return {
        "geojson": f"{RTC}/{stack}tiles.geojson",
        "vectors": f"{RTC}/{stack}tile_vectors.geojson",
        "offsets": f"{RTC}/{stack}offsets.csv",
        "pairs": report(
            f"{RTC}/{stack}pairs.csv",
            category="RTC geolocation",
            subcategory=f"{stack}Verdict",
            caption="../report/rtc_pairs.rst",
        ),
        "tiles": f"{RTC}/{stack}tiles.csv",
        "summary": report(
            f"{RTC}/{stack}summary.csv",
            category="RTC geolocation",
            subcategory=f"{stack}Verdict",
            caption="../report/rtc_summary.rst",
        ),
        "dates": f"{RTC}/{stack}dates.csv",
        "dates_tiles": f"{RTC}/{stack}dates_tiles.csv",
        **(
            {
                "terrain": report(
                    f"{RTC}/{stack}terrain_split.csv",
                    category="RTC geolocation",
                    subcategory=f"{stack}Verdict",
                    caption="../report/rtc_terrain.rst",
                )
            }
            if RTC_TERRAIN
            else {}
        ),
        "events": report(
            f"{RTC}/{stack}date_events.csv",
            category="RTC geolocation",
            subcategory=f"{stack}Verdict",
            caption="../report/rtc_events.rst",
        ),
        "date_plot": report(
            f"{RTC}/{stack}plots/date_offsets.png",
            category="RTC geolocation",
            subcategory=f"{stack}Figures",
            caption="../report/rtc_dates.rst",
        ),
        "pair_plot": report(
            f"{RTC}/{stack}plots/pair_offsets.png",
            category="RTC geolocation",
            subcategory=f"{stack}Figures",
            caption="../report/rtc_pair_offsets.rst",
        ),
        "tile_plot": report(
            f"{RTC}/{stack}plots/tile_mean_offsets.png",
            category="RTC geolocation",
            subcategory=f"{stack}Figures",
            caption="../report/rtc_tile_mean.rst",
        ),
        "time_plot": report(
            f"{RTC}/{stack}plots/offsets_vs_time.png",
            category="RTC geolocation",
            subcategory=f"{stack}Figures",
            caption="../report/rtc_offsets_time.rst",
        ),
        "quiver_plot": report(
            f"{RTC}/{stack}plots/tile_quiver.png",
            category="RTC geolocation",
            subcategory=f"{stack}Figures",
            caption="../report/rtc_quiver.rst",
        ),
        **(
            {
                "injection": report(
                    f"{RTC}/{stack}injection.csv",
                    category="RTC geolocation",
                    subcategory=f"{stack}Verdict",
                    caption="../report/rtc_injection.rst",
                )
            }
            if RTC_INJECTION["enabled"]
            else {}
        ),
    }


def rtc_reflectors_outputs(stack):
    """rtc_reflectors' outputs for one stack ("{stack}" or a wildcard value)."""
    return {
        "reflectors": f"{RTC}/{stack}reflectors.csv",
        "absolute": report(
            f"{RTC}/{stack}absolute.csv",
            category="RTC geolocation",
            subcategory=f"{stack}Absolute",
            caption="../report/rtc_absolute.rst",
        ),
        "plot": report(
            f"{RTC}/{stack}plots/absolute_offsets.png",
            category="RTC geolocation",
            subcategory=f"{stack}Absolute",
            caption="../report/rtc_absolute.rst",
        ),
    }


def rtc_batch_outputs(stack):
    """A batched stack's files: rtc_select's, the chain's, rtc_aggregate's and
    (with point targets) rtc_reflectors'."""
    out = {
        "scenes": f"{RTC}/{stack}scenes.csv",
        "grid": f"{RTC}/{stack}grid.json",
        "superset": f"{RTC}/{stack}superset/1-of-1/index.csv",
        "flat": f"{RTC}/{stack}flat/1-of-1.json",
        "layout": f"{RTC}/{stack}tile_layout.geojson",
        "xcorr": f"{RTC}/{stack}xcorr/1-of-1.csv",
        **rtc_aggregate_outputs(stack),
    }
    if RTC_INJECTION["enabled"]:
        out["injected"] = rtc_injected_path(out["xcorr"])
    if rtc_reflectors_file():
        out |= {f"point_{k}": v for k, v in rtc_reflectors_outputs(stack).items()}
    return out


def rtc_batch_logs(stack):
    """A batched stack's logs: its select, its chain and its point targets."""
    names = ["select", "stack"] + (["reflectors"] if rtc_reflectors_file() else [])
    return {name: stage_log(f"rtc/{stack}{name}") for name in names}


def rtc_batch_command(stacks):
    """The chain of a batch: per stack, its select then its chain, each part
    logged to the stack's own log."""
    parts = []
    for stack in stacks:
        out = {k: str(v) for k, v in rtc_batch_outputs(stack).items()}
        params = RTC_SELECT_PARAMS | RTC_FLATTEN_PARAMS | RTC_XCORR_PARAMS | RTC_AGGREGATE_PARAMS
        params |= dict(
            pattern=RTC_STACKS[stack],
            key=rtc_stack_key(stack),
            chunk="1-of-1",
            superset_dir=os.path.dirname(out["superset"]),
            **{k: out[k] for k in ("scenes", "grid", "superset", "flat", "layout", "xcorr")},
            inject=rtc_inject_args(out["xcorr"]),
            injection=rtc_injection_part([out.get("injected", "")], out, out["grid"]),
            terrain=rtc_terrain_part(out, out["grid"], stack),
        )
        chain = ["--log {log.select:q}", RTC_SELECT_CMD, "--log {log.stack:q}",
                 RTC_FLATTEN_CMD, RTC_TILES_CMD, RTC_XCORR_CMD, RTC_AGGREGATE_CMD]  # fmt: skip
        fields = dict(params=params, output=out, threads=1, log=rtc_batch_logs(stack))
        parts.append(format_command(" :: ".join(chain), **fields))
        if rtc_reflectors_file():
            fields["input"] = {"scenes": out["scenes"], "reflectors": rtc_reflectors_file()}
            fields["params"] = RTC_REFLECTORS_PARAMS
            fields["output"] = {k[6:]: v for k, v in out.items() if k.startswith("point_")}
            cmd = f"--log {{log.reflectors:q}} :: {RTC_REFLECTORS_CMD}"
            parts.append(format_command(cmd, **fields))
    return " :: ".join(parts)


# ---------------------------------------------------------------- targets
def rtc_stack_targets(stack):
    d = f"{RTC}/{stack}"
    out = [
        f"{d}offsets.csv",
        f"{d}pairs.csv",
        f"{d}tiles.csv",
        f"{d}summary.csv",
        f"{d}tiles.geojson",
        f"{d}plots/pair_offsets.png",
        f"{d}dates.csv",
    ]
    if rtc_reflectors_file():
        out += [f"{d}reflectors.csv", f"{d}absolute.csv"]
    return out


def rtc_targets():
    out = [f for stack in RTC_STACKS for f in rtc_stack_targets(stack)]
    if RCFG["stacks"]:
        out.append(f"{RTC}/stacks_summary.csv")
    if rtc_is_demo():
        out.append(f"{DEMO}/rtc_accuracy.csv")
        if rtc_reflectors_file():
            out.append(f"{DEMO}/rtc_absolute_accuracy.csv")
    return out


# ---------------------------------------------------------------- InSAR helpers
INSAR = f"{OUT}/insar"
ICFG = config["insar"]


def insar_model():
    """The deformation model of insar.velocity_model (sarstack.velocity.DeformationModel)."""
    from sarstack.velocity import DeformationModel, model_error

    m = ICFG["velocity_model"]
    try:
        return DeformationModel.from_config(m["annual"], m["semiannual"], m["steps"])
    except SarstackError as e:
        _fail(model_error(e))


def insar_model_maps():
    """The model's amplitude and phase rasters (stems) that insar_plots draws."""
    return [n for n in insar_model().output_names() if n.endswith(("_amplitude", "_phase"))]


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


def insar_matched():
    """The files the InSAR globs match (local, or /vsis3/ paths of s3:// globs)."""
    return [f for pattern in insar_globs() if pattern for f in _matched(pattern)]


def insar_select_input(wildcards):
    if insar_is_demo():
        return [f"{DEMO}/insar/truth.csv"]
    return local_inputs(insar_matched())


def insar_select_fingerprint(wildcards):
    """The matched files' fingerprint; "" for the demo, whose ifgs the workflow writes."""
    return "" if insar_is_demo() else inputs_fingerprint(insar_matched())


def insar_strip_chunks():
    """(block rows, pixels x used ifgs per block row) of the inversion scatter:
    strips are whole block rows; known after insar_select."""
    from sarstack.insar import strip_work

    if INSAR_ENDS:
        table = checkpoints.insar_head.get().output.ifgs
    else:
        table = checkpoints.insar_select.get().output[0]
    return (
        *strip_work(table, ICFG["block_shape"][0], ICFG["method"], ICFG["weighting"]),
        "invert",
    )


def insar_strips_all(wildcards):
    return [f"{INSAR}/strips/{c}" for c in chunk_labels(*insar_strip_chunks())]


#: The per-stage rules that insar_small (and insar_head, insar_tail) stand in for.
INSAR_SMALL_RULES = ("insar_select", "insar_correlation_mean", "insar_reference",
                     "insar_invert", "insar_gather", "insar_velocity")  # fmt: skip


def _insar_stage_named():
    """Whether the command line names one of INSAR_SMALL_RULES (a target,
    --forcerun, --until, --omit-from, --allowed-rules): that stage is then
    meant as a job of its own, e.g. --forcerun insar_velocity after a change
    of the velocity model. A cluster job's own Snakemake gets the rule it runs
    in --allowed-rules, so it reads the Snakefile as its planner did. Read from
    the command line (Snakemake sets its DAG settings only after reading the
    Snakefile); a rule named through the Python API is not seen."""
    words = {w.split("=", 1)[-1] for w in sys.argv[1:]}
    words |= {n for w in list(words) for n in w.split(",")}
    return bool(words & set(INSAR_SMALL_RULES))


def insar_small():
    """Whether the InSAR chain, select to plots, runs as one insar_small job:
    insar.fuse_small_stack on, no correction between the reference point and
    the inversion (troposphere, unwrap correction, deramp), and one inversion
    strip (sarstack.chunks, from the file count and the first ifg's size, read
    now; for the demo, whose ifgs do not exist yet, from demo.insar_dates and
    demo.insar_shape, 3 ifgs per date). A stage's own start-up, and one round
    of scheduling, is then paid once, not five times. Only the job layout
    depends on this: results are identical for every strip count."""
    if not (ICFG["fuse_small_stack"] and insar_has_inputs()) or _insar_stage_named():
        return False
    if ICFG["troposphere"]["delays"] or ICFG["unwrap_correction"] != "none":
        return False
    if ICFG["deramp"] != "none":
        return False
    try:
        if insar_is_demo():
            n_ifgs = 3 * config["demo"]["insar_dates"]
            height, width = config["demo"]["insar_shape"]
        else:
            from sarstack.io import read_grid

            files = _matched(ICFG["unwrapped"])
            if not files:
                return False  # insar_select says what is wrong
            g = read_grid(files[0])
            n_ifgs, height, width = len(files), g.height, g.width
    except SarstackError:
        return False
    from sarstack.chunks import invert_cost

    block_rows = ICFG["block_shape"][0]
    per_pixel = ICFG["weighting"] == "correlation" or bool(ICFG["conncomp"])
    cost = invert_cost(ICFG["method"], per_pixel)
    return n_chunks(-(-height // block_rows), block_rows * width * n_ifgs * cost, "invert") == 1


INSAR_SMALL = insar_small()


def insar_fused_ends():
    """Whether a stack that is not one insar_small job runs its head (select,
    correlation mean, reference) as one insar_head job and its tail (gather,
    velocity, plots) as one insar_tail job, its inversion strips (and
    corrections) between them: insar.fuse_small_stack on and no stage named on
    the command line, as for insar_small. Two start-ups and two rounds of
    scheduling instead of five; the same commands and files."""
    return (
        not INSAR_SMALL
        and ICFG["fuse_small_stack"]
        and insar_has_inputs()
        and not _insar_stage_named()
    )


INSAR_ENDS = insar_fused_ends()


def insar_quality_is_correlation_mean():
    """The reference point's quality is the mean correlation that
    insar_correlation_mean writes (no insar.quality raster, correlation given)."""
    return insar_quality() == f"{INSAR}/correlation_mean.tif"


def insar_gather_rule_outputs():
    """insar_gather's files (and insar_small's share of them)."""
    return {
        **({"mask": f"{INSAR}/mask.tif"} if ICFG["coherence_mask"] is not None else {}),
        # the rasters of sarstack.insar.INVERSION_OUTPUTS that are on
        **insar_gather_outputs(),
        "ifg_residuals": f"{INSAR}/ifg_residuals.csv",
        "closure_triangles": f"{INSAR}/closure_triangles.csv",
        "index": f"{INSAR}/timeseries.csv",
    }


def insar_velocity_rule_outputs():
    """insar_velocity's files, with its plots (and insar_small's share of them)."""
    plot = lambda name, caption: report(  # noqa: E731
        f"{INSAR}/plots/{name}.png", category="InSAR", caption=f"../report/{caption}.rst"
    )
    return {
        **({"mask_plot": plot("mask", "insar_mask")} if ICFG["coherence_mask"] is not None else {}),
        "velocity": report(
            f"{INSAR}/velocity.tif", category="InSAR", caption="../report/insar_velocity_tif.rst"
        ),
        "std": f"{INSAR}/velocity_std.tif",
        "model": insar_model_outputs(),
        "velocity_plot": plot("velocity", "insar_velocity"),
        "series_plot": plot("timeseries", "insar_series"),
        "network_plot": plot("network", "insar_network"),
        "map_plots": [plot(n, "insar_model_map") for n in insar_model_maps()],
    }


def path_option(flag, path):
    """``[flag, path]``, or ``[]`` without a path: an optional file argument
    that the command quotes, ``{params.NAME:q}``."""
    return [flag, str(path)] if path else []


def insar_velocity_mask(input, output):
    """insar_velocity's mask arguments (a list, quoted by the command's ``:q``):
    the coherence mask (``input.mask``, a list) and its plot, when on."""
    if not input.mask:
        return []
    return [*path_option("--mask", input.mask[0]), *path_option("--out-mask", output.mask_plot)]


def insar_velocity_maps(map_plots):
    """insar_plots' --map arguments (a list, quoted by ``:q``): each model raster and its plot."""
    return [
        a
        for n, p in zip(insar_model_maps(), map_plots)
        for a in ("--map", f"{INSAR}/{n}.tif", str(p))
    ]


#: Placeholders of the fused chains' commands (insar_small_command,
#: insar_tail_command), put back as Snakemake fields once the rest is filled in.
_THREADS, _STRIPS = "\x00threads\x00", "\x00strips\x00"


def _insar_head_parts():
    """The head of an InSAR chain, select :: (correlation mean ::) reference,
    each stage's command filled in as Snakemake fills it for its own rule."""
    ifgs, ref = f"{INSAR}/ifgs.csv", f"{INSAR}/reference_point.txt"
    select = dict(
        unwrapped=insar_globs()[0],
        conncomp=path_option("--conncomp", insar_globs()[1]),
        correlation=path_option("--correlation", insar_globs()[2]),
        opts=stage_opts("insar_select"),
    )
    parts = [format_command(INSAR_SELECT_CMD, params=select, output=ifgs)]
    if insar_quality_is_correlation_mean():
        params = dict(opts=stage_opts("insar_correlation_mean"))
        parts.append(format_command(INSAR_CORRELATION_MEAN_CMD, params=params,
                                    input=dict(ifgs=ifgs), output=insar_quality()))  # fmt: skip
    params = dict(
        opts=stage_opts("insar_reference"), quality=path_option("--quality", insar_quality())
    )
    parts.append(format_command(INSAR_REFERENCE_CMD, params=params, input=dict(ifgs=ifgs),
                                output=ref))  # fmt: skip
    return parts


def _insar_tail_parts(strips):
    """The tail of an InSAR chain, gather :: velocity :: plots, over the strip
    folders ``strips``, filled in as for their own rules (``{threads}`` as
    _THREADS)."""
    from types import SimpleNamespace

    d = {k: str(v) for k, v in insar_gather_rule_outputs().items()}
    v = insar_velocity_rule_outputs()
    ifgs, ref = f"{INSAR}/ifgs.csv", f"{INSAR}/reference_point.txt"
    params = dict(opts=stage_opts("insar_gather"), out_dir=INSAR)
    parts = [format_command(INSAR_GATHER_CMD, params=params,
                            input=dict(strips=strips, ifgs=ifgs, reference=ref),
                            output=d, threads=_THREADS)]  # fmt: skip
    params = dict(
        opts=stage_opts("insar_velocity"),
        out_dir=INSAR,
        mask=insar_velocity_mask(
            SimpleNamespace(mask=[d["mask"]] if "mask" in d else []),
            SimpleNamespace(mask_plot=str(v.get("mask_plot"))),
        ),
        maps=insar_velocity_maps([str(p) for p in v["map_plots"]]),
    )
    inputs = dict(index=d["index"], ifgs=ifgs, reference=ref,
                  temporal_coherence=f"{INSAR}/temporal_coherence.tif",
                  ifg_residual_std=f"{INSAR}/ifg_residual_std.tif")  # fmt: skip
    outputs = {k: str(p) for k, p in v.items() if k not in ("model", "map_plots")}
    parts.append(format_command(INSAR_VELOCITY_CMD, params=params, input=inputs, output=outputs,
                                threads=_THREADS))  # fmt: skip
    return parts


def _chain(parts):
    """Stage commands joined by ``::``, braces escaped for Snakemake but the
    placeholders' fields (``{threads}``, ``{input.strips:q}``)."""
    chain = " :: ".join(parts).replace("{", "{{").replace("}", "}}")
    chain = chain.replace(shlex.quote(_STRIPS), "{input.strips:q}")
    return chain.replace(_THREADS, "{threads}")


def insar_small_command():
    """insar_small's chain: the per-stage rules' commands (insar.smk's
    INSAR_*_CMD), each filled in as Snakemake fills it for that rule's job, one
    strip ("1-of-1") that the gather reads and Snakemake then removes. Filled
    in now, so that a config change reruns the job (its code changed), except
    ``{threads}``, left for Snakemake (threads never rerun a job); other braces
    are escaped."""
    ifgs, ref, strip = f"{INSAR}/ifgs.csv", f"{INSAR}/reference_point.txt", f"{INSAR}/strips/1-of-1"
    params = dict(opts=stage_opts("insar_invert"), ramps=[], troposphere=[], unwrap=[])
    invert = format_command(INSAR_INVERT_CMD, params=params, input=dict(ifgs=ifgs, reference=ref),
                            wildcards=dict(chunk="1-of-1"), output=strip, threads=_THREADS)  # fmt: skip
    return _chain([*_insar_head_parts(), invert, *_insar_tail_parts([strip])])


def insar_head_command():
    """insar_head's chain, select :: (correlation mean ::) reference, filled in
    now as insar_small's (a config change reruns it)."""
    return _chain(_insar_head_parts())


def insar_tail_command():
    """insar_tail's chain, gather :: velocity :: plots, filled in now as
    insar_small's but for the strip folders, ``{input.strips:q}`` (known
    after the head's checkpoint), and ``{threads}``."""
    return _chain(_insar_tail_parts([_STRIPS]))


def user_files_fingerprint(*paths):
    """Params function: the fingerprint (inputs_fingerprint) of files the config
    names (insar.mask, insar.quality, rtc.reflectors; None when unset), so one
    replaced in place by an older file still reruns the rules that read it."""
    return lambda wildcards: inputs_fingerprint([p for p in paths if p])


def insar_ramps():
    """ramps.csv of insar_deramp when insar.deramp is on (an input of the inversion)."""
    return [f"{INSAR}/ramps.csv"] if ICFG["deramp"] != "none" else []


def insar_unwrap():
    """unwrap_ambiguity.tif of insar_unwrap_correction when insar.unwrap_correction
    is on (an input of the deramp fit and the inversion); [] when off."""
    return [f"{INSAR}/unwrap_ambiguity.tif"] if ICFG["unwrap_correction"] != "none" else []


def insar_troposphere():
    """The per-date delay folder of insar_troposphere when insar.troposphere.delays
    is set (an input of the deramp fit and the inversion); [] when off."""
    return [f"{INSAR}/troposphere"] if ICFG["troposphere"]["delays"] else []


def insar_troposphere_inputs(wildcards=None):
    """The delay rasters and the incidence raster the config names (local ones:
    S3 objects are no rule inputs; their fingerprints rerun the stage)."""
    tropo = ICFG["troposphere"]
    if not tropo["delays"]:
        return []
    files = list(_matched(tropo["delays"])) + ([tropo["incidence"]] if tropo["incidence"] else [])
    return local_inputs(files)


def insar_troposphere_fingerprint(wildcards):
    """The delay and incidence rasters' fingerprint: one replaced in place reruns the stage."""
    return inputs_fingerprint(insar_troposphere_inputs())


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
    if ICFG["injection"]["enabled"]:
        out.append(f"{INSAR}/injection.csv")
    if ICFG["reference_sensitivity"]["enabled"]:
        out.append(f"{INSAR}/reference_sensitivity.tif")
    if insar_is_demo():
        out.append(f"{DEMO}/insar_accuracy.csv")
    return out


def all_targets():
    """Both branches where enabled and given inputs (or the demo); a branch with
    neither is left out with a note, never run on the demo behind the user's back."""
    out = []
    for name, enabled, has, targets, key in (
        ("rtc", RCFG["enabled"], rtc_has_inputs(), rtc_targets, "rtc.inputs (or rtc.stacks)"),
        ("insar", ICFG["enabled"], insar_has_inputs(), insar_targets, "insar.unwrapped"),
    ):
        if enabled and has:
            out += targets()
        elif enabled:
            print(
                f"note: {name} branch skipped: {key} is not set (demo.enabled: true runs the demo)",
                file=sys.stderr,
            )
    if quality_runs():
        out.append(f"{QUALITY}/dates.csv")
    return out


QUALITY = f"{OUT}/quality"


def quality_runs():
    """The per-date quality table is made when a branch runs (target all)."""
    return (RCFG["enabled"] and rtc_has_inputs()) or (ICFG["enabled"] and insar_has_inputs())


def quality_inputs():
    """quality_dates' tables: each RTC stack's dates and events, the InSAR
    ifg table and the gather's per-ifg and per-triangle sums (where run)."""
    out = {}
    if RCFG["enabled"] and rtc_has_inputs():
        out["rtc"] = [f"{RTC}/{s}{f}" for s in RTC_STACKS for f in ("dates.csv", "date_events.csv")]
    if ICFG["enabled"] and insar_has_inputs():
        out |= {
            "ifgs": f"{INSAR}/ifgs.csv",
            "residuals": f"{INSAR}/ifg_residuals.csv",
            "triangles": f"{INSAR}/closure_triangles.csv",
        }
    return out


def quality_args(wildcards, input):
    """quality_dates' input options: a list, quoted by the command's ``{params.inputs:q}``."""
    args = []
    if "rtc" in input.keys():
        for s in RTC_STACKS:
            args += [
                "--rtc",
                STACK_NAMES[s] or "rtc",
                f"{RTC}/{s}dates.csv",
                f"{RTC}/{s}date_events.csv",
            ]
    if "ifgs" in input.keys():
        args += ["--ifgs", input.ifgs, "--ifg-residuals", input.residuals]
        args += ["--closure-triangles", input.triangles]
    return [str(a) for a in args]


def branch_targets(name):
    """Input function of the `rtc` / `insar` targets: a one-line error when asked for
    a branch that has no inputs."""
    has, targets, key = {
        "rtc": (rtc_has_inputs, rtc_targets, "rtc.inputs (or rtc.stacks)"),
        "insar": (insar_has_inputs, insar_targets, "insar.unwrapped"),
    }[name]

    def inputs(wildcards):
        if not has():
            _fail(f"config {key}: not set, so the {name} branch has no inputs")
        return targets()

    return inputs


# ---------------------------------------------------------------- end of a run on the terminal


def print_run_summary():
    """onsuccess: a few lines on what this run produced (sarstack.summary)."""
    from sarstack.summary import run_summary

    try:
        lines = run_summary(
            Path(OUT),
            STACK_NAMES if RCFG["enabled"] else {},
            tuple(RCFG["tiles"]),
            bool(ICFG["enabled"] and insar_has_inputs()),
            since=_STARTED,
        )
    except Exception as e:  # a summary never turns a finished run into a failure
        lines = [f"note: no summary ({type(e).__name__}: {e})"]
    for line in lines:
        print(line, file=sys.stderr)


# ---------------------------------------------------------------- errors on the terminal


def _last_line(path):
    """The last non-blank line of a log; None without one (or without the file)."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else None


def _is_error_line(line):
    """``error: ...`` (a stage's error) or ``SomeError: ...`` (a traceback's end)."""
    return line.startswith("error:") or "Error" in line.split(":")[0]


class _NoFinalWorkflowError:
    """A filter on Snakemake's logger that drops its closing ``WorkflowError: At
    least one job did not complete successfully.``: the failed jobs' errors were
    just printed (the exit status stays non-zero)."""

    def filter(self, record):
        return "At least one job did not complete successfully" not in str(record.msg)


def report_job_errors():
    """onerror: each failed job's one-line error (its log's last line, with the
    log's path) on the terminal, once, after Snakemake's own report of the job."""
    import logging

    try:  # Snakemake's failed jobs (group jobs: their members, whose logs say which)
        failed = [
            ([Path(str(f)) for f in member.log], not job.is_group())
            for job in workflow.scheduler.failed
            for member in (job.jobs if job.is_group() else [job])
        ]
    except AttributeError:  # not known: the logs written in this run that end in an error
        logs = sorted(Path(LOGS).rglob("*.log")) if Path(LOGS).is_dir() else []
        failed = [([p], False) for p in logs if p.stat().st_mtime >= _STARTED]
    printed = set()
    for logs, job_failed in failed:
        # A job with several logs (rtc_batch_N: one per stack) names those
        # ending in an error; a failed job with none, its first log (a
        # batch's own log, which has what came before its stacks' logs).
        lines = [(p, _last_line(p)) for p in logs if p not in printed]
        hits = [(p, ln) for p, ln in lines if ln and _is_error_line(ln)]
        if not hits and job_failed and lines:
            hits = lines[:1]
        for log_path, line in hits:
            printed.add(log_path)
            if not line:
                line = "error: the job failed with nothing in its log"
            elif not line.startswith("error:"):
                line = f"error: {line}"
            print(f"{line}  [log: {log_path}]", file=sys.stderr)
    logging.getLogger("snakemake.logging").addFilter(_NoFinalWorkflowError())
