# RTC geolocation stability: select -> superset -> flatten -> tiles -> xcorr
# -> aggregate -> dates, plots; absolute geolocation against point targets
# (reflectors) beside it. Per-date and per-pair stages scatter into chunk jobs
# (config `scatter`), each handling many dates/pairs in one process, and gather
# where the whole stack is needed. Every rule runs once per stack (wildcard
# {stack}, see common.smk); stacks_summary gathers the stacks. Files are the
# only interface.


# Command fragments shared by the per-stage rules and rtc_batch_* (small
# stacks' whole chains in one job); every file comes in through params.
RTC_SELECT_CMD = (
    "rtc_select {params.opts_select} --inputs {params.pattern:q} --key {params.key:q}"
    " --scenes {output.scenes:q} --grid {output.grid:q}"
)
RTC_FLATTEN_CMD = (
    "rtc_superset {params.opts_superset} --scenes {params.scenes:q} --grid {params.grid:q}"
    " --chunk {params.chunk} --out-dir {params.superset_dir:q}"
    " :: rtc_flatten {params.opts_flatten} --superset {params.superset:q}"
    " --grid {params.grid:q} --threads {threads} --out {params.flat:q}"
)
RTC_TILES_CMD = (
    "rtc_tiles {params.opts_tiles} --grid {params.grid:q} --out {params.layout:q}"
    " {params.flat:q}"
)
RTC_XCORR_CMD = (
    "rtc_xcorr {params.opts_xcorr} --flat {params.flat:q} --grid {params.grid:q}"
    " --chunk {params.chunk} --threads {threads} --out {params.xcorr:q} {params.inject}"
)
RTC_AGGREGATE_CMD = (
    "rtc_aggregate {params.opts_aggregate}"
    " --offsets {output.offsets:q} --pairs {output.pairs:q} --tiles {output.tiles:q}"
    " --summary {output.summary:q} --layout {params.layout:q} --out-geojson {output.geojson:q}"
    " --out-vectors {output.vectors:q} {params.xcorr:q}"
    " :: rtc_dates --offsets {output.offsets:q} --pairs {output.pairs:q}"
    " --out {output.dates:q} --out-tiles {output.dates_tiles:q} --plot {output.date_plot:q}"
    " --summary {output.summary:q} --scenes {params.scenes:q} --out-events {output.events:q}"
    " {params.opts_dates}"
    " :: rtc_plots --offsets {output.offsets:q} --pairs {output.pairs:q}"
    " --tiles {output.tiles:q} --geojson {params.layout:q} {params.opts_plots}"
    " --out-pair {output.pair_plot:q} --out-tile {output.tile_plot:q}"
    " --out-time {output.time_plot:q} --out-quiver {output.quiver_plot:q} --threads {threads}"
    "{params.injection}{params.terrain}"
)
RTC_REFLECTORS_CMD = (
    "rtc_reflectors {params.opts_reflectors} --scenes {input.scenes:q}"
    " --reflectors {input.reflectors:q} --out-reflectors {output.reflectors:q} --out-absolute {output.absolute:q}"
    " --plot {output.plot:q}"
)
# Injection-recovery (rtc.injection), appended to RTC_AGGREGATE_CMD's chain by
# common.smk's rtc_injection_part when it is on.
RTC_INJECTION_CMD = (
    "rtc_injection {opts} --dates {o.dates:q} --summary {o.summary:q} --grid {g:q}"
    " --out {o.injection:q} {inj:q}"
)
# Terrain vs timing (rtc.dem / rtc.incidence), appended to RTC_AGGREGATE_CMD's
# chain by common.smk's rtc_terrain_part when either is set.
RTC_TERRAIN_CMD = (
    "rtc_terrain {opts} --offsets {o.offsets:q} --grid {g:q} --stack {s:q} --out {o.terrain:q}"
)
# The stages' config-driven options (sarstack.options), as params of both
# kinds of rule.
RTC_SELECT_PARAMS = dict(opts_select=stage_opts("rtc_select"))
RTC_FLATTEN_PARAMS = dict(
    opts_superset=stage_opts("rtc_superset"),
    opts_flatten=stage_opts("rtc_flatten"),
    opts_tiles=stage_opts("rtc_tiles"),
)
RTC_XCORR_PARAMS = dict(opts_xcorr=stage_opts("rtc_xcorr"))
RTC_REFLECTORS_PARAMS = dict(opts_reflectors=stage_opts("rtc_reflectors"))
RTC_AGGREGATE_PARAMS = dict(
    opts_aggregate=stage_opts("rtc_aggregate"),
    opts_dates=stage_opts("rtc_dates"),
    opts_plots=stage_opts("rtc_plots"),
)


checkpoint rtc_select:
    input:
        scenes=rtc_select_input,
    output:
        scenes=f"{RTC}/{{stack}}scenes.csv",
        grid=f"{RTC}/{{stack}}grid.json",
    log:
        stage_log("rtc/{stack}select"),
    benchmark:
        stage_benchmark("rtc/{stack}select")
    wildcard_constraints:
        stack=RTC_CHUNKED_RX,
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("rtc_select"),
    params:
        **RTC_SELECT_PARAMS,
        pattern=rtc_pattern,
        key=lambda w: rtc_stack_key(w.stack),
        # Not passed on: a change of an input file's size or mtime reruns this job.
        fingerprint=rtc_select_fingerprint,
    shell:
        stage_shell(f"python -m sarstack {RTC_SELECT_CMD}", warnings_from="{log:q}")


rule rtc_flatten:
    # rtc_superset (each scene of the chunk on the union grid) then rtc_flatten
    # (its percentile bounds), in one process: one start-up per chunk.
    input:
        scenes=f"{RTC}/{{stack}}scenes.csv",
        grid=f"{RTC}/{{stack}}grid.json",
    output:
        # The superset index is written before the flatten JSON, the JSON last:
        # a job killed before it is redone on the next run, whatever Snakemake's
        # incomplete markers say (an empty directory() output from a kill once
        # passed for complete).
        superset=f"{RTC}/{{stack}}superset/{{chunk}}/index.csv",
        flat=f"{RTC}/{{stack}}flat/{{chunk}}.json",
    log:
        stage_log("rtc/{stack}flatten_{chunk}"),
    benchmark:
        stage_benchmark("rtc/{stack}flatten_{chunk}")
    wildcard_constraints:
        stack=RTC_CHUNKED_RX,
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(*rtc_scene_chunks(wildcards), share=RTC_SHARE)
    resources:
        **stage_resources("rtc_flatten"),
    params:
        **RTC_FLATTEN_PARAMS,
        chunk=lambda w: w.chunk,
        scenes=lambda w, input: input.scenes,
        grid=lambda w, input: input.grid,
        superset=lambda w, output: output.superset,
        superset_dir=lambda w, output: os.path.dirname(output.superset),
        flat=lambda w, output: output.flat,
    shell:
        stage_shell(f"python -m sarstack {RTC_FLATTEN_CMD}")


rule rtc_xcorr:
    input:
        flat=rtc_flat_all,
        grid=f"{RTC}/{{stack}}grid.json",
    output:
        **(
            {"injected": f"{RTC}/{{stack}}xcorr/{{chunk}}.injected.csv"}
            if RTC_INJECTION["enabled"]
            else {}
        ),
        xcorr=f"{RTC}/{{stack}}xcorr/{{chunk}}.csv",
    log:
        stage_log("rtc/{stack}xcorr_{chunk}"),
    benchmark:
        stage_benchmark("rtc/{stack}xcorr_{chunk}")
    wildcard_constraints:
        stack=RTC_CHUNKED_RX,
    # Ahead of any other job ready at the same time (rtc_reflectors): the
    # xcorr chunks are the stack's longest jobs.
    priority: 1
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(*rtc_pair_chunks(wildcards), share=RTC_SHARE)
    resources:
        **stage_resources("rtc_xcorr"),
    params:
        **RTC_XCORR_PARAMS,
        chunk=lambda w: w.chunk,
        flat=lambda w, input: input.flat,
        grid=lambda w, input: input.grid,
        xcorr=lambda w, output: output.xcorr,
        inject=lambda w, output: rtc_inject_args(output.xcorr),
    shell:
        stage_shell(f"python -m sarstack {RTC_XCORR_CMD}")


rule rtc_aggregate:
    # rtc_tiles (the tile layout), rtc_aggregate (tables, verdict), rtc_dates
    # (per-date offsets) and rtc_plots, one after the other in one process: one
    # start-up (and one matplotlib import) per stack instead of four. The
    # layout is needed here only (rtc_xcorr cuts the same tiles from grid.json
    # and rtc.tiles); as a job of its own it waited for a core behind the xcorr
    # chunks and held the aggregate back (0.5-0.6 s of a 4096² x 24 branch).
    input:
        xcorr=rtc_xcorr_all,
        injected=rtc_injected_all,
        grid=f"{RTC}/{{stack}}grid.json",
        flat=rtc_flat_all,
        scenes=f"{RTC}/{{stack}}scenes.csv",
    output:
        **rtc_aggregate_outputs("{stack}"),
        layout=f"{RTC}/{{stack}}tile_layout.geojson",
    log:
        stage_log("rtc/{stack}aggregate"),
    benchmark:
        stage_benchmark("rtc/{stack}aggregate")
    wildcard_constraints:
        stack=RTC_CHUNKED_RX,
    conda:
        ENV
    # rtc_plots draws its figures in two processes (the stack's last job).
    threads: job_threads(2)
    resources:
        **stage_resources("rtc_aggregate"),
    params:
        **RTC_AGGREGATE_PARAMS,
        opts_tiles=RTC_FLATTEN_PARAMS["opts_tiles"],
        grid=lambda w, input: input.grid,
        flat=lambda w, input: input.flat,
        layout=lambda w, output: output.layout,
        scenes=lambda w, input: input.scenes,
        xcorr=lambda w, input: input.xcorr,
        injection=lambda w, input, output: rtc_injection_part(input.injected, output, input.grid),
        terrain=lambda w, input, output: rtc_terrain_part(output, input.grid, w.stack),
        # Not passed on: the DEM or incidence raster replaced reruns this job.
        terrain_fingerprint=lambda w: rtc_terrain_fingerprint(w.stack),
    shell:
        stage_shell(f"python -m sarstack {RTC_TILES_CMD} :: {RTC_AGGREGATE_CMD}")


# Small stacks, several per job: a stack that needs one chunk of every
# scattered stage (a burst of dozens of dates: common.smk's RTC_FUSED) runs
# its whole chain, select :: flatten :: tiles :: xcorr :: aggregate (with dates
# and plots), then rtc_reflectors with point targets, in one process, and
# rtc.stacks_per_job such stacks share one rtc_batch_N job (RTC_BATCHES): one
# start-up for them all. The same stages and files as the per-stage rules
# (results are identical for every chunk count and batch), each stack's logs
# in its own select.log, stack.log (and reflectors.log). The rules have no wildcards: one rule per batch, its command
# written out by common.smk's rtc_batch_command. A failed stack fails its
# job: the batch's other stacks are redone on the next run.
for _n, _stacks in enumerate(RTC_BATCHES, 1):

    rule:
        name:
            f"rtc_batch_{_n}"
        input:
            [f for s in _stacks for f in rtc_stack_inputs(s)],
            [rtc_reflectors_file()] if rtc_reflectors_file() else [],
        output:
            [f for s in _stacks for f in rtc_batch_outputs(s).values()],
        log:
            # The batch's own log first: report_job_errors names it when a
            # batch fails with no stack's error (e.g. killed for memory).
            **{
                "batch": stage_log(f"rtc/batch_{_n}"),
                **{
                    f"{name}{i}": path
                    for i, s in enumerate(_stacks)
                    for name, path in rtc_batch_logs(s).items()
                },
            },
        benchmark:
            stage_benchmark(f"rtc/batch_{_n}")
        conda:
            ENV
        threads: 1
        resources:
            **stage_resources("rtc_batch", stacks=len(_stacks)),
        params:
            # Not passed on: a change of an input file's size or mtime reruns this job.
            fingerprint=[rtc_stack_fingerprint(s) for s in _stacks],
            reflectors_fingerprint=user_files_fingerprint(RCFG["reflectors"]),
            terrain_fingerprint=[rtc_terrain_fingerprint(s) for s in _stacks],
            cmd=rtc_batch_command(_stacks),
            select_logs=[stage_log(f"rtc/{s}select") for s in _stacks],
        shell:
            stage_shell(
                "python -m sarstack {params.cmd}",
                log="log.batch",
                warnings_from="{params.select_logs:q}",
            )


rule rtc_reflectors:
    input:
        scenes=f"{RTC}/{{stack}}scenes.csv",
        reflectors=lambda w: rtc_reflectors_file() or [],
    output:
        **rtc_reflectors_outputs("{stack}"),
    log:
        stage_log("rtc/{stack}reflectors"),
    benchmark:
        stage_benchmark("rtc/{stack}reflectors")
    wildcard_constraints:
        stack=RTC_CHUNKED_RX,
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("rtc_reflectors"),
    params:
        **RTC_REFLECTORS_PARAMS,
        reflectors_fingerprint=user_files_fingerprint(RCFG["reflectors"]),
    shell:
        stage_shell(f"python -m sarstack {RTC_REFLECTORS_CMD}")


rule rtc_stacks_summary:
    input:
        [f"{RTC}/{s}{f}" for s in RTC_STACKS for f in STACK_SUMMARY_INPUTS],
    output:
        summary=report(
            f"{RTC}/stacks_summary.csv",
            category="RTC geolocation",
            subcategory="Stacks",
            caption="../report/rtc_stacks_summary.rst",
        ),
        overall=f"{RTC}/stacks_overall.csv",
        plot=report(
            f"{RTC}/stacks_summary.png",
            category="RTC geolocation",
            subcategory="Stacks",
            caption="../report/rtc_stacks_summary.rst",
        ),
    log:
        stage_log("rtc/stacks_summary"),
    benchmark:
        stage_benchmark("rtc/stacks_summary")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("rtc_stacks_summary"),
    params:
        stacks=stacks_summary_args,
        opts=stage_opts("rtc_stacks_summary"),
        absolute="--absolute" if rtc_reflectors_file() else "",
    shell:
        stage_shell(
            "python -m sarstack rtc_stacks_summary {params.opts} {params.stacks:q} {params.absolute}"
            " --out {output.summary:q} --out-overall {output.overall:q} --plot {output.plot:q}"
        )


rule rtc:
    input:
        branch_targets("rtc"),
