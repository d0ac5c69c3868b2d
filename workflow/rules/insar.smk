# InSAR time series: select -> reference point -> network inversion (block-wise)
# -> velocity -> plots. Files are the only interface.


checkpoint insar_select:
    input:
        files=insar_select_input,
    output:
        f"{INSAR}/ifgs.csv",
    log:
        f"{LOGS}/insar/select.log",
    benchmark:
        f"{BENCH}/insar/select.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.11 GB (insar-1024x60), with a margin
        mem_mb=500,
        runtime=10,
    params:
        unwrapped=insar_globs()[0],
        conncomp=opt("--conncomp", insar_globs()[1]),
        correlation=opt("--correlation", insar_globs()[2]),
        opts=stage_opts("insar_select"),
        # Not passed on: a change of an input file's size or mtime reruns this job.
        fingerprint=insar_select_fingerprint,
    shell:
        "python -m sarstack insar_select {params.opts} --unwrapped {params.unwrapped:q}"
        " {params.conncomp} {params.correlation} --out {output:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


rule insar_correlation_mean:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        f"{INSAR}/correlation_mean.tif",
    log:
        f"{LOGS}/insar/correlation_mean.log",
    benchmark:
        f"{BENCH}/insar/correlation_mean.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_correlation_mean"),
    shell:
        "python -m sarstack insar_correlation_mean {params.opts} --ifgs {input.ifgs:q}"
        " --column correlation --units 1 --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


rule insar_conncomp_count:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        f"{INSAR}/conncomp_count.tif",
    log:
        f"{LOGS}/insar/conncomp_count.log",
    benchmark:
        f"{BENCH}/insar/conncomp_count.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_conncomp_count"),
    shell:
        "python -m sarstack insar_conncomp_count {params.opts} --ifgs {input.ifgs:q}"
        " --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


rule insar_reference:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
        quality=insar_quality(),
    output:
        f"{INSAR}/reference_point.txt",
    log:
        f"{LOGS}/insar/reference.log",
    benchmark:
        f"{BENCH}/insar/reference.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        # --block is insar.block_shape: the reads hold every ifg of a block (897
        # ifgs x 512² float64 was 1.9 GB); the choice does not depend on the blocks.
        opts=stage_opts("insar_reference"),
        quality=opt("--quality", insar_quality()),
    shell:
        "python -m sarstack insar_reference {params.opts} --ifgs {input.ifgs:q} {params.quality}"
        " --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/troposphere.log",
    benchmark:
        f"{BENCH}/insar/troposphere.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # one insar.block_shape block of every ifg and every date's delay at a time
        mem_mb=1000,
        runtime=20,
    params:
        # Not passed on: a delay or incidence raster replaced in place reruns this job.
        fingerprint=insar_troposphere_fingerprint,
        opts=stage_opts("insar_troposphere"),
    shell:
        "python -m sarstack insar_troposphere {params.opts} --ifgs {input.ifgs:q}"
        " --out-dir {output.delays:q} --out {output.table:q} --out-plot {output.plot:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/unwrap_correction.log",
    benchmark:
        f"{BENCH}/insar/unwrap_correction.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # one insar.block_shape block of every ifg and its triangles' closures at a time
        mem_mb=2000,
        runtime=60,
    params:
        opts=stage_opts("insar_unwrap_correction"),
    shell:
        "python -m sarstack insar_unwrap_correction {params.opts} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} --out {output.ambiguity:q} --out-count {output.counts:q}"
        " --out-table {output.table:q}"
        " --out-closures {output.closures_before:q} {output.closures_after:q}"
        " --out-plot {output.plot:q} 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/deramp.log",
    benchmark:
        f"{BENCH}/insar/deramp.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # one insar.block_shape block of every ifg at a time
        mem_mb=1000,
        runtime=20,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_deramp"),
        troposphere=lambda w, input: opt(
            "--troposphere", input.troposphere[0] if input.troposphere else None
        ),
        unwrap=lambda w, input: opt("--unwrap", input.unwrap[0] if input.unwrap else None),
    shell:
        "python -m sarstack insar_deramp {params.opts} --ifgs {input.ifgs:q}"
        " --out {output.table:q} --out-plot {output.plot:q}"
        " {params.troposphere} {params.unwrap} 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/invert_{{chunk}}.log",
    benchmark:
        f"{BENCH}/insar/invert_{{chunk}}.tsv"
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(*insar_strip_chunks())
    resources:
        # measured peak 0.94 GB at L2, 1.27 GB at L1 (insar-1024x60), with a margin
        mem_mb=2000,
        runtime=60,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_invert"),
        ramps=lambda w, input: opt("--ramps", input.ramps[0] if input.ramps else None),
        troposphere=lambda w, input: opt(
            "--troposphere", input.troposphere[0] if input.troposphere else None
        ),
        unwrap=lambda w, input: opt("--unwrap", input.unwrap[0] if input.unwrap else None),
    shell:
        "python -m sarstack insar_invert {params.opts} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} --strip {wildcards.chunk} --out-dir {output:q}"
        " {params.ramps} {params.troposphere} {params.unwrap} --threads {threads} 2> {log:q}"
        " || sarstack_fail {log:q}"


rule insar_gather:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        strips=insar_strips_all,
    output:
        **({"mask": f"{INSAR}/mask.tif"} if ICFG["coherence_mask"] is not None else {}),
        # the rasters of sarstack.insar.INVERSION_OUTPUTS that are on
        **insar_gather_outputs(),
        ifg_residuals=f"{INSAR}/ifg_residuals.csv",
        closure_triangles=f"{INSAR}/closure_triangles.csv",
        index=f"{INSAR}/timeseries.csv",
    log:
        f"{LOGS}/insar/gather.log",
    benchmark:
        f"{BENCH}/insar/gather.tsv"
    conda:
        ENV
    threads: job_threads()
    resources:
        # measured peak 0.18 GB (insar-1024x60); the coherence mask holds 1 byte per pixel, with a margin
        mem_mb=1000,
        runtime=60,
    params:
        out_dir=lambda w, output: os.path.dirname(output.index),
        opts=stage_opts("insar_gather"),
    shell:
        "python -m sarstack insar_gather {params.opts} {input.strips:q} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} --out-dir {params.out_dir:q}"
        " --index {output.index:q} --threads {threads} 2> {log:q} || sarstack_fail {log:q}"


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
        **(
            {
                "mask_plot": report(
                    f"{INSAR}/plots/mask.png",
                    category="InSAR",
                    caption="../report/insar_mask.rst",
                )
            }
            if ICFG["coherence_mask"] is not None
            else {}
        ),
        velocity=report(
            f"{INSAR}/velocity.tif", category="InSAR", caption="../report/insar_velocity_tif.rst"
        ),
        std=f"{INSAR}/velocity_std.tif",
        model=insar_model_outputs(),
        velocity_plot=report(
            f"{INSAR}/plots/velocity.png", category="InSAR", caption="../report/insar_velocity.rst"
        ),
        series_plot=report(
            f"{INSAR}/plots/timeseries.png", category="InSAR", caption="../report/insar_series.rst"
        ),
        network_plot=report(
            f"{INSAR}/plots/network.png", category="InSAR", caption="../report/insar_network.rst"
        ),
        map_plots=[
            report(
                f"{INSAR}/plots/{n}.png",
                category="InSAR",
                caption="../report/insar_model_map.rst",
            )
            for n in insar_model_maps()
        ],
    log:
        f"{LOGS}/insar/velocity.log",
    benchmark:
        f"{BENCH}/insar/velocity.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.46 GB (insar-1024x60, with the plots), with a margin
        mem_mb=1000,
        runtime=20,
    params:
        # --block is insar.block_shape, not the top-level 512 x 512: 60 dates x
        # 512² float64 temporaries held 1.1 GB; 64 x 512 blocks 0.5 GB, the same
        # rasters, faster.
        opts=stage_opts("insar_velocity"),
        out_dir=lambda w, output: os.path.dirname(output.velocity),
        mask=lambda w, input, output: (
            f"{opt('--mask', input.mask[0])} {opt('--out-mask', output.mask_plot)}"
            if input.mask
            else ""
        ),
        maps=lambda w, output: " ".join(
            opt("--map", [f"{INSAR}/{n}.tif", p])
            for n, p in zip(insar_model_maps(), output.map_plots)
        ),
    shell:
        "python -m sarstack insar_velocity {params.opts} --index {input.index:q}"
        " --ifgs {input.ifgs:q} --out {output.velocity:q} --out-std {output.std:q}"
        " --ifg-residual-std {input.ifg_residual_std:q}"
        " --out-dir {params.out_dir:q}"
        " :: insar_plots --velocity {output.velocity:q} --std {output.std:q}"
        " --index {input.index:q} --ifgs {input.ifgs:q} --reference {input.reference:q}"
        " --temporal-coherence {input.temporal_coherence:q} {params.mask} {params.maps}"
        " --out-velocity {output.velocity_plot:q} --out-series {output.series_plot:q}"
        " --out-network {output.network_plot:q} 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/injection.log",
    benchmark:
        f"{BENCH}/insar/injection.tsv"
    conda:
        ENV
    threads: job_threads()
    resources:
        # one strip of the whole stack, block by block (insar_invert's 2 GB), then the gather
        mem_mb=2000,
        runtime=120,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"]),
        opts=stage_opts("insar_injection"),
        velocity_dir=lambda w, input: os.path.dirname(input.velocity),
        troposphere=lambda w, input: opt(
            "--troposphere", input.troposphere[0] if input.troposphere else None
        ),
        unwrap=lambda w, input: opt("--unwrap", input.unwrap[0] if input.unwrap else None),
    shell:
        "python -m sarstack insar_injection {params.opts} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} {params.troposphere} {params.unwrap}"
        " --velocity-dir {params.velocity_dir:q}"
        " --temporal-coherence {input.temporal_coherence:q} --out {output.table:q}"
        " --out-error {output.error:q} --threads {threads} 2> {log:q}"
        " || sarstack_fail {log:q}"


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
        f"{LOGS}/insar/reference_sensitivity.log",
    benchmark:
        f"{BENCH}/insar/reference_sensitivity.tsv"
    conda:
        ENV
    threads: job_threads()
    resources:
        # one inversion strip of the whole stack at a time (as insar_invert), the
        # reference candidates' rasters (as insar_reference), with a margin
        mem_mb=2000,
        runtime=120,
    params:
        aux_fingerprint=user_files_fingerprint(ICFG["mask"], ICFG["quality"]),
        opts=stage_opts("insar_reference_sensitivity"),
        quality=opt("--quality", insar_quality()),
        ramps=lambda w, input: opt("--ramps", input.ramps[0] if input.ramps else None),
        troposphere=lambda w, input: opt(
            "--troposphere", input.troposphere[0] if input.troposphere else None
        ),
        unwrap=lambda w, input: opt("--unwrap", input.unwrap[0] if input.unwrap else None),
    shell:
        "python -m sarstack insar_reference_sensitivity {params.opts} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} {params.quality} {params.ramps} {params.troposphere}"
        " {params.unwrap} --velocity {input.velocity:q} --n-used {input.n_used:q}"
        " --out {output.raster:q} --out-table {output.table:q} --out-plot {output.plot:q}"
        " --threads {threads} 2> {log:q} || sarstack_fail {log:q}"


rule insar_rereference:
    input:
        index=f"{INSAR}/timeseries.csv",
        ifgs=f"{INSAR}/ifgs.csv",
        timeseries=f"{INSAR}/timeseries",
    output:
        timeseries=directory(f"{INSAR}/timeseries_rereferenced"),
        index=f"{INSAR}/timeseries_rereferenced.csv",
    log:
        f"{LOGS}/insar/rereference.log",
    benchmark:
        f"{BENCH}/insar/rereference.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        opts=stage_opts("insar_rereference"),
    shell:
        "python -m sarstack insar_rereference {params.opts} --index {input.index:q}"
        " --ifgs {input.ifgs:q} --out-dir {output.timeseries:q} --out-index {output.index:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/quality/dates.log",
    benchmark:
        f"{BENCH}/quality/dates.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # tables only, with a margin
        mem_mb=500,
        runtime=10,
    params:
        opts=stage_opts("quality_dates"),
        inputs=quality_args,
    shell:
        "python -m sarstack quality_dates {params.opts} {params.inputs} --out {output:q}"
        " 2> {log:q} || sarstack_fail {log:q}"
