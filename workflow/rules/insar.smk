# InSAR time series: select -> reference point -> network inversion (block-wise)
# -> velocity -> plots. Files are the only interface.


# Command fragments shared by the per-stage rules and insar_small (a small
# stack's whole chain in one job, common.smk's insar_small_command).
INSAR_SELECT_CMD = (
    "insar_select {params.opts} --unwrapped {params.unwrapped:q}"
    " {params.conncomp:q} {params.correlation:q} --out {output:q}"
)
INSAR_CORRELATION_MEAN_CMD = (
    "insar_correlation_mean {params.opts} --ifgs {input.ifgs:q}"
    " --column correlation --units 1 --out {output:q}"
)
INSAR_REFERENCE_CMD = (
    "insar_reference {params.opts} --ifgs {input.ifgs:q} {params.quality:q} --out {output:q}"
)
INSAR_INVERT_CMD = (
    "insar_invert {params.opts} --ifgs {input.ifgs:q}"
    " --reference {input.reference:q} --strip {wildcards.chunk} --out-dir {output:q}"
    " {params.ramps:q} {params.troposphere:q} {params.unwrap:q} --threads {threads}"
)
INSAR_GATHER_CMD = (
    "insar_gather {params.opts} {input.strips:q} --ifgs {input.ifgs:q}"
    " --reference {input.reference:q} --out-dir {params.out_dir:q}"
    " --index {output.index:q} --threads {threads}"
)
INSAR_VELOCITY_CMD = (
    "insar_velocity {params.opts} --index {input.index:q}"
    " --ifgs {input.ifgs:q} --out {output.velocity:q} --out-std {output.std:q}"
    " --ifg-residual-std {input.ifg_residual_std:q}"
    " --out-dir {params.out_dir:q} --threads {threads}"
    " :: insar_plots --velocity {output.velocity:q} --std {output.std:q}"
    " --index {input.index:q} --ifgs {input.ifgs:q} --reference {input.reference:q}"
    " --temporal-coherence {input.temporal_coherence:q} {params.mask:q} {params.maps:q}"
    " --out-velocity {output.velocity_plot:q} --out-series {output.series_plot:q}"
    " --out-network {output.network_plot:q} --threads {threads}"
)


checkpoint insar_select:
    input:
        files=insar_select_input,
    output:
        f"{INSAR}/ifgs.csv",
    log:
        stage_log("insar/select"),
    benchmark:
        stage_benchmark("insar/select")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_select"),
    params:
        unwrapped=insar_globs()[0],
        conncomp=path_option("--conncomp", insar_globs()[1]),
        correlation=path_option("--correlation", insar_globs()[2]),
        opts=stage_opts("insar_select"),
        # Not passed on: a change of an input file's size or mtime reruns this job.
        fingerprint=insar_select_fingerprint,
    shell:
        stage_shell(f"python -m sarstack {INSAR_SELECT_CMD}")


rule insar_correlation_mean:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        f"{INSAR}/correlation_mean.tif",
    log:
        stage_log("insar/correlation_mean"),
    benchmark:
        stage_benchmark("insar/correlation_mean")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_correlation_mean"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_correlation_mean"),
    shell:
        stage_shell(f"python -m sarstack {INSAR_CORRELATION_MEAN_CMD}")


rule insar_conncomp_count:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        f"{INSAR}/conncomp_count.tif",
    log:
        stage_log("insar/conncomp_count"),
    benchmark:
        stage_benchmark("insar/conncomp_count")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_conncomp_count"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_conncomp_count"),
    shell:
        stage_shell(
            "python -m sarstack insar_conncomp_count {params.opts} --ifgs {input.ifgs:q}"
            " --out {output:q}"
        )


rule insar_reference:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
        quality=insar_quality(),
    output:
        f"{INSAR}/reference_point.txt",
    log:
        stage_log("insar/reference"),
    benchmark:
        stage_benchmark("insar/reference")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_reference"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        # --block is insar.block_shape: the reads hold every ifg of a block (897
        # ifgs x 512² float64 was 1.9 GB); the choice does not depend on the blocks.
        opts=stage_opts("insar_reference"),
        quality=path_option("--quality", insar_quality()),
    shell:
        stage_shell(f"python -m sarstack {INSAR_REFERENCE_CMD}")


rule insar_troposphere:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        delays=insar_troposphere_inputs,
    output:
        delays=directory(f"{INSAR}/troposphere"),
        table=report(
            f"{INSAR}/troposphere.csv",
            category="InSAR",
            caption="../report/insar_troposphere.rst",
        ),
        plot=report(
            f"{INSAR}/plots/troposphere.png",
            category="InSAR",
            caption="../report/insar_troposphere_plot.rst",
        ),
    log:
        stage_log("insar/troposphere"),
    benchmark:
        stage_benchmark("insar/troposphere")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_troposphere"),
    params:
        # Not passed on: a delay or incidence raster replaced in place reruns this job.
        fingerprint=insar_troposphere_fingerprint,
        opts=stage_opts("insar_troposphere"),
    shell:
        stage_shell(
            "python -m sarstack insar_troposphere {params.opts} --ifgs {input.ifgs:q}"
            " --out-dir {output.delays:q} --out {output.table:q} --out-plot {output.plot:q}"
        )


rule insar_unwrap_correction:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        # the closures are taken of the phase referenced to it, as the inversion's
        reference=f"{INSAR}/reference_point.txt",
    output:
        ambiguity=f"{INSAR}/unwrap_ambiguity.tif",
        counts=report(
            f"{INSAR}/unwrap_corrected_count.tif",
            category="InSAR",
            caption="../report/insar_unwrap_count.rst",
        ),
        table=report(
            f"{INSAR}/unwrap_correction.csv",
            category="InSAR",
            caption="../report/insar_unwrap_correction.rst",
        ),
        closures_before=f"{INSAR}/closure_count_before.tif",
        closures_after=f"{INSAR}/closure_count_after.tif",
        plot=report(
            f"{INSAR}/plots/unwrap_correction.png",
            category="InSAR",
            caption="../report/insar_unwrap_plot.rst",
        ),
    log:
        stage_log("insar/unwrap_correction"),
    benchmark:
        stage_benchmark("insar/unwrap_correction")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_unwrap_correction"),
    params:
        opts=stage_opts("insar_unwrap_correction"),
    shell:
        stage_shell(
            "python -m sarstack insar_unwrap_correction {params.opts} --ifgs {input.ifgs:q}"
            " --reference {input.reference:q} --out {output.ambiguity:q}"
            " --out-count {output.counts:q} --out-table {output.table:q}"
            " --out-closures {output.closures_before:q} {output.closures_after:q}"
            " --out-plot {output.plot:q}"
        )


rule insar_deramp:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
        troposphere=insar_troposphere(),
        unwrap=insar_unwrap(),
    output:
        table=report(f"{INSAR}/ramps.csv", category="InSAR", caption="../report/insar_ramps.rst"),
        plot=report(
            f"{INSAR}/plots/ramps.png",
            category="InSAR",
            caption="../report/insar_ramps_plot.rst",
        ),
    log:
        stage_log("insar/deramp"),
    benchmark:
        stage_benchmark("insar/deramp")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_deramp"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_deramp"),
        troposphere=input_option("--troposphere", "troposphere"),
        unwrap=input_option("--unwrap", "unwrap"),
    shell:
        stage_shell(
            "python -m sarstack insar_deramp {params.opts} --ifgs {input.ifgs:q}"
            " --out {output.table:q} --out-plot {output.plot:q}"
            " {params.troposphere:q} {params.unwrap:q}"
        )


rule insar_invert:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        ramps=insar_ramps(),
        troposphere=insar_troposphere(),
        unwrap=insar_unwrap(),
        aux=insar_aux_files(),
    output:
        temp(directory(f"{INSAR}/strips/{{chunk}}")),
    log:
        stage_log("insar/invert_{chunk}"),
    benchmark:
        stage_benchmark("insar/invert_{chunk}")
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(*insar_strip_chunks())
    resources:
        **stage_resources("insar_invert"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_invert"),
        ramps=input_option("--ramps", "ramps"),
        troposphere=input_option("--troposphere", "troposphere"),
        unwrap=input_option("--unwrap", "unwrap"),
    shell:
        stage_shell(f"python -m sarstack {INSAR_INVERT_CMD}")


rule insar_gather:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        strips=insar_strips_all,
    output:
        **insar_gather_rule_outputs(),
    log:
        stage_log("insar/gather"),
    benchmark:
        stage_benchmark("insar/gather")
    conda:
        ENV
    threads: job_threads()
    resources:
        **stage_resources("insar_gather"),
    params:
        out_dir=lambda w, output: os.path.dirname(output.index),
        opts=stage_opts("insar_gather"),
    shell:
        stage_shell(f"python -m sarstack {INSAR_GATHER_CMD}")


rule insar_velocity:
    # insar_velocity (velocity and model rasters) then insar_plots, in one
    # process: one start-up for the two small whole-stack stages.
    input:
        index=f"{INSAR}/timeseries.csv",
        ifgs=f"{INSAR}/ifgs.csv",
        timeseries=f"{INSAR}/timeseries",
        reference=f"{INSAR}/reference_point.txt",
        temporal_coherence=f"{INSAR}/temporal_coherence.tif",
        ifg_residual_std=f"{INSAR}/ifg_residual_std.tif",
        mask=[f"{INSAR}/mask.tif"] if ICFG["coherence_mask"] is not None else [],
    output:
        **insar_velocity_rule_outputs(),
    log:
        stage_log("insar/velocity"),
    benchmark:
        stage_benchmark("insar/velocity")
    conda:
        ENV
    # insar_plots draws its figures in two processes (the branch's last job).
    threads: job_threads(2)
    resources:
        **stage_resources("insar_velocity"),
    params:
        # --block is insar.block_shape, not the top-level 512 x 512: 60 dates x
        # 512² float64 temporaries held 1.1 GB; 64 x 512 blocks 0.5 GB, the same
        # rasters, faster.
        opts=stage_opts("insar_velocity"),
        out_dir=lambda w, output: os.path.dirname(output.velocity),
        mask=lambda w, input, output: insar_velocity_mask(input, output),
        maps=lambda w, output: insar_velocity_maps(output.map_plots),
    shell:
        stage_shell(f"python -m sarstack {INSAR_VELOCITY_CMD}")


# A small stack (common.smk's INSAR_SMALL: one inversion strip, no correction
# stage) runs its whole chain, select :: (correlation mean ::) reference ::
# invert :: gather :: velocity :: plots, in one process: the same stages,
# commands and files as the per-stage rules above (results are identical for
# every strip count), one start-up instead of five. insar.fuse_small_stack:
# false keeps one job per stage.
if INSAR_SMALL:
    INSAR_SMALL_CMD = insar_small_command()

    rule insar_small:
        input:
            files=insar_select_input,
            aux=insar_aux_files(),
            quality=[ICFG["quality"]] if ICFG["quality"] else [],
        output:
            **(
                {"correlation_mean": f"{INSAR}/correlation_mean.tif"}
                if insar_quality_is_correlation_mean()
                else {}
            ),
            **insar_gather_rule_outputs(),
            **insar_velocity_rule_outputs(),
            ifgs=f"{INSAR}/ifgs.csv",
            reference=f"{INSAR}/reference_point.txt",
            strip=temp(directory(f"{INSAR}/strips/1-of-1")),
        log:
            stage_log("insar/small"),
        benchmark:
            stage_benchmark("insar/small")
        conda:
            ENV
        threads: job_threads()
        resources:
            **stage_resources("insar_small"),
        params:
            # Not passed on: a change of an input file's size or mtime reruns this job.
            fingerprint=insar_select_fingerprint,
            aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        shell:
            # the chain filled in when the workflow is read: a config change
            # changes this command, so Snakemake reruns the job
            stage_shell(f"python -m sarstack {INSAR_SMALL_CMD}")

    ruleorder: insar_small > insar_select
    ruleorder: insar_small > insar_correlation_mean
    ruleorder: insar_small > insar_reference
    ruleorder: insar_small > insar_invert
    ruleorder: insar_small > insar_gather
    ruleorder: insar_small > insar_velocity


# A larger stack (common.smk's INSAR_ENDS) runs the stages before its strips,
# select :: (correlation mean ::) reference, as one insar_head job, and those
# after them, gather :: velocity :: plots, as one insar_tail job: the same
# stages, commands and files as the per-stage rules, two start-ups and two
# rounds of scheduling instead of five. Naming a stage on the command line or
# insar.fuse_small_stack: false keeps one job per stage.
if INSAR_ENDS:
    INSAR_HEAD_CMD = insar_head_command()
    INSAR_TAIL_CMD = insar_tail_command()

    checkpoint insar_head:
        input:
            files=insar_select_input,
            aux=insar_aux_files(),
            quality=[ICFG["quality"]] if ICFG["quality"] else [],
        output:
            **(
                {"correlation_mean": f"{INSAR}/correlation_mean.tif"}
                if insar_quality_is_correlation_mean()
                else {}
            ),
            ifgs=f"{INSAR}/ifgs.csv",
            reference=f"{INSAR}/reference_point.txt",
        log:
            stage_log("insar/head"),
        benchmark:
            stage_benchmark("insar/head")
        conda:
            ENV
        threads: 1
        resources:
            **stage_resources("insar_head"),
        params:
            # Not passed on: a change of an input file's size or mtime reruns this job.
            fingerprint=insar_select_fingerprint,
            aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        shell:
            # filled in when the workflow is read: a config change reruns the job
            stage_shell(f"python -m sarstack {INSAR_HEAD_CMD}")

    rule insar_tail:
        input:
            ifgs=f"{INSAR}/ifgs.csv",
            reference=f"{INSAR}/reference_point.txt",
            strips=insar_strips_all,
        output:
            **insar_gather_rule_outputs(),
            **insar_velocity_rule_outputs(),
        log:
            stage_log("insar/tail"),
        benchmark:
            stage_benchmark("insar/tail")
        conda:
            ENV
        threads: job_threads()
        resources:
            **stage_resources("insar_tail"),
        shell:
            stage_shell(f"python -m sarstack {INSAR_TAIL_CMD}")

    ruleorder: insar_head > insar_select
    ruleorder: insar_head > insar_correlation_mean
    ruleorder: insar_head > insar_reference
    ruleorder: insar_tail > insar_gather
    ruleorder: insar_tail > insar_velocity


rule insar_injection:
    # insar.injection: a known bowl added to the ifgs as they are read, the
    # inversion, gather and velocity fit run again in one job (scratch folder
    # removed), recovered minus injected against the stack's own velocity.
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        troposphere=insar_troposphere(),
        unwrap=insar_unwrap(),
        aux=insar_aux_files(),
        velocity=f"{INSAR}/velocity.tif",
        std=f"{INSAR}/velocity_std.tif",
        model=insar_model_outputs(),
        temporal_coherence=f"{INSAR}/temporal_coherence.tif",
    output:
        table=report(
            f"{INSAR}/injection.csv", category="InSAR", caption="../report/insar_injection.rst"
        ),
        error=report(
            f"{INSAR}/injection_error.tif",
            category="InSAR",
            caption="../report/insar_injection_error.rst",
        ),
    log:
        stage_log("insar/injection"),
    benchmark:
        stage_benchmark("insar/injection")
    conda:
        ENV
    threads: job_threads()
    resources:
        **stage_resources("insar_injection"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_injection"),
        velocity_dir=lambda w, input: os.path.dirname(input.velocity),
        troposphere=input_option("--troposphere", "troposphere"),
        unwrap=input_option("--unwrap", "unwrap"),
    shell:
        stage_shell(
            "python -m sarstack insar_injection {params.opts} --ifgs {input.ifgs:q}"
            " --reference {input.reference:q} {params.troposphere:q} {params.unwrap:q}"
            " --velocity-dir {params.velocity_dir:q}"
            " --temporal-coherence {input.temporal_coherence:q} --out {output.table:q}"
            " --out-error {output.error:q} --threads {threads}"
        )


rule insar_reference_sensitivity:
    # insar.reference_sensitivity: the chain again with K alternative reference points.
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        quality=insar_quality(),
        ramps=insar_ramps(),
        troposphere=insar_troposphere(),
        unwrap=insar_unwrap(),
        aux=insar_aux_files(),
        velocity=f"{INSAR}/velocity.tif",
        n_used=f"{INSAR}/n_ifgs_used.tif",
    output:
        raster=report(
            f"{INSAR}/reference_sensitivity.tif",
            category="InSAR",
            caption="../report/insar_reference_sensitivity_tif.rst",
        ),
        table=report(
            f"{INSAR}/reference_sensitivity.csv",
            category="InSAR",
            caption="../report/insar_reference_sensitivity_table.rst",
        ),
        plot=report(
            f"{INSAR}/plots/reference_sensitivity.png",
            category="InSAR",
            caption="../report/insar_reference_sensitivity.rst",
        ),
    log:
        stage_log("insar/reference_sensitivity"),
    benchmark:
        stage_benchmark("insar/reference_sensitivity")
    conda:
        ENV
    threads: job_threads()
    resources:
        **stage_resources("insar_reference_sensitivity"),
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        opts=stage_opts("insar_reference_sensitivity"),
        quality=path_option("--quality", insar_quality()),
        ramps=input_option("--ramps", "ramps"),
        troposphere=input_option("--troposphere", "troposphere"),
        unwrap=input_option("--unwrap", "unwrap"),
    shell:
        stage_shell(
            "python -m sarstack insar_reference_sensitivity {params.opts} --ifgs {input.ifgs:q}"
            " --reference {input.reference:q} {params.quality:q} {params.ramps:q} {params.troposphere:q}"
            " {params.unwrap:q} --velocity {input.velocity:q} --n-used {input.n_used:q}"
            " --out {output.raster:q} --out-table {output.table:q} --out-plot {output.plot:q}"
            " --threads {threads}"
        )


rule insar_rereference:
    input:
        index=f"{INSAR}/timeseries.csv",
        ifgs=f"{INSAR}/ifgs.csv",
        timeseries=f"{INSAR}/timeseries",
    output:
        timeseries=directory(f"{INSAR}/timeseries_rereferenced"),
        index=f"{INSAR}/timeseries_rereferenced.csv",
    log:
        stage_log("insar/rereference"),
    benchmark:
        stage_benchmark("insar/rereference")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("insar_rereference"),
    params:
        opts=stage_opts("insar_rereference"),
    shell:
        stage_shell(
            "python -m sarstack insar_rereference {params.opts} --index {input.index:q}"
            " --ifgs {input.ifgs:q} --out-dir {output.timeseries:q} --out-index {output.index:q}"
        )


rule insar:
    input:
        branch_targets("insar"),


rule quality_dates:
    # Both branches' per-date quality in one table (sarstack.quality).
    input:
        **quality_inputs(),
    output:
        report(
            f"{QUALITY}/dates.csv",
            category="Quality",
            caption="../report/quality_dates.rst",
        ),
    log:
        stage_log("quality/dates"),
    benchmark:
        stage_benchmark("quality/dates")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("quality_dates"),
    params:
        opts=stage_opts("quality_dates"),
        inputs=quality_args,
    shell:
        stage_shell(
            "python -m sarstack quality_dates {params.opts} {params.inputs:q} --out {output:q}"
        )
