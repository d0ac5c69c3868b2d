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
        date_format=ICFG["date_format"],
        edit=" ".join(
            o
            for o in (
                opt("--exclude-dates", ICFG["exclude_dates"]),
                opt("--exclude-pairs", ICFG["exclude_pairs"]),
                opt("--max-temporal-baseline", ICFG["max_temporal_baseline"]),
                opt("--min-mean-correlation", ICFG["min_mean_correlation"]),
                opt("--start-date", ICFG["start_date"]),
                opt("--end-date", ICFG["end_date"]),
                opt("--max-loop-rms-rad", ICFG["closure_qc"]["max_loop_rms_rad"]),
                "" if ICFG["closure_qc"]["exclude"] else "--loop-report-only",
            )
            if o
        ),
        block=BLOCK,
        # Not passed on: a change of an input file's size or mtime reruns this job.
        fingerprint=insar_select_fingerprint,
    shell:
        "python -m sarstack insar_select --unwrapped {params.unwrapped:q} {params.conncomp}"
        " {params.correlation} --date-format {params.date_format:q} {params.edit}"
        " --block {params.block} --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


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
        block=BLOCK,
        mask=opt("--mask", ICFG["mask"]),
    shell:
        "python -m sarstack insar_correlation_mean --ifgs {input.ifgs:q} --column correlation --units 1"
        " --block {params.block} {params.mask} --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


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
        block=BLOCK,
        mask=opt("--mask", ICFG["mask"]),
    shell:
        "python -m sarstack insar_conncomp_count --ifgs {input.ifgs:q} --block {params.block} {params.mask}"
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
        point=opt("--point", ICFG["reference_point"]) or opt("--lonlat", ICFG["reference_lonlat"]),
        window=ICFG["reference_window"],
        quality=opt("--quality", insar_quality()),
        mask=opt("--mask", ICFG["mask"]),
        threshold=ICFG["reference_threshold"],
        # insar.block_shape: the reads hold every ifg of a block (897 ifgs x
        # 512² float64 was 1.9 GB); the choice does not depend on the blocks.
        block=IBLOCK,
    shell:
        "python -m sarstack insar_reference --ifgs {input.ifgs:q} {params.point} {params.quality}"
        " {params.mask} --threshold {params.threshold} --block {params.block} --window {params.window}"
        " --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


rule insar_deramp:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        report(f"{INSAR}/ramps.csv", category="InSAR", caption="../report/insar_ramps.rst"),
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
        model=ICFG["deramp"],
        min_cor=opt("--min-correlation", ICFG["deramp_min_correlation"]),
        mask=opt("--mask", ICFG["mask"]),
        block=IBLOCK,
    shell:
        "python -m sarstack insar_deramp --ifgs {input.ifgs:q} --model {params.model}"
        " {params.min_cor} {params.mask} --block {params.block} --out {output:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


rule insar_invert:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        ramps=insar_ramps(),
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
        method=ICFG["method"],
        wavelength=opt("--wavelength", ICFG["wavelength"]),
        mask=opt("--mask", ICFG["mask"]),
        block=IBLOCK,
        tol=ICFG["l1_tolerance"],
        max_iter=ICFG["l1_max_iterations"],
        weighting=ICFG["weighting"],
        looks=ICFG["correlation_looks"],
        cor_threshold=ICFG["correlation_threshold"],
        residuals="--write-residuals" if ICFG["write_residuals"] else "",
        window=ICFG["reference_window"],
        jaxcache=JAXCACHE,
        ramps=lambda w, input: opt("--ramps", input.ramps[0] if input.ramps else None),
    shell:
        "python -m sarstack insar_invert --ifgs {input.ifgs:q} --reference {input.reference:q}"
        " --strip {wildcards.chunk} --out-dir {output:q} --method {params.method}"
        " {params.wavelength} {params.mask} --block {params.block}"
        " --l1-tolerance {params.tol} --l1-max-iterations {params.max_iter}"
        " --weighting {params.weighting} --correlation-looks {params.looks}"
        " --correlation-threshold {params.cor_threshold} {params.residuals}"
        " --reference-window {params.window} {params.ramps}"
        " --threads {threads} {params.jaxcache} 2> {log:q} || sarstack_fail {log:q}"


rule insar_gather:
    input:
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        strips=insar_strips_all,
    output:
        **({"residuals": directory(f"{INSAR}/residuals")} if ICFG["write_residuals"] else {}),
        **({"mask": f"{INSAR}/mask.tif"} if ICFG["coherence_mask"] is not None else {}),
        timeseries=directory(f"{INSAR}/timeseries"),
        residual_sum=f"{INSAR}/residual_sum.tif",
        temporal_coherence=f"{INSAR}/temporal_coherence.tif",
        n_used=f"{INSAR}/n_ifgs_used.tif",
        ifg_residual_std=f"{INSAR}/ifg_residual_std.tif",
        closure=report(
            f"{INSAR}/closure_nonzero_count.tif",
            category="InSAR",
            caption="../report/insar_closure.rst",
        ),
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
        method=ICFG["method"],
        weighting=ICFG["weighting"],
        wavelength=opt("--wavelength", ICFG["wavelength"]),
        block=IBLOCK,
        mask=opt("--coherence-mask", ICFG["coherence_mask"])
        + " "
        + opt("--min-region-px", ICFG["min_region_px"]),
    shell:
        "python -m sarstack insar_gather {input.strips:q} --ifgs {input.ifgs:q}"
        " --reference {input.reference:q} --out-dir {params.out_dir:q}"
        " --index {output.index:q} --method {params.method} --weighting {params.weighting}"
        " {params.wavelength} --block {params.block} {params.mask} --threads {threads}"
        " 2> {log:q} || sarstack_fail {log:q}"


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
        # insar.block_shape, not the top-level 512 x 512: 60 dates x 512² float64
        # temporaries held 1.1 GB; 64 x 512 blocks 0.5 GB, the same rasters, faster.
        block=IBLOCK,
        weighting="--weight-by-correlation" if ICFG["velocity_weighting"] == "correlation" else "",
        uncertainty=ICFG["velocity_uncertainty"],
        annual="--annual" if ICFG["velocity_model"]["annual"] else "",
        semiannual="--semiannual" if ICFG["velocity_model"]["semiannual"] else "",
        steps=opt("--step", ICFG["velocity_model"]["steps"]),
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
        "python -m sarstack insar_velocity --index {input.index:q} --ifgs {input.ifgs:q}"
        " --out {output.velocity:q} --out-std {output.std:q} --block {params.block}"
        " {params.weighting} {params.annual} {params.semiannual} {params.steps}"
        " --uncertainty {params.uncertainty} --ifg-residual-std {input.ifg_residual_std:q}"
        " --out-dir {params.out_dir:q}"
        " :: insar_plots --velocity {output.velocity:q} --std {output.std:q}"
        " --index {input.index:q} --ifgs {input.ifgs:q} --reference {input.reference:q}"
        " --temporal-coherence {input.temporal_coherence:q} {params.mask} {params.maps}"
        " --out-velocity {output.velocity_plot:q} --out-series {output.series_plot:q}"
        " --out-network {output.network_plot:q} 2> {log:q} || sarstack_fail {log:q}"


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
        date=ICFG["extra_reference_date"],
        block=BLOCK,
    shell:
        "python -m sarstack insar_rereference --index {input.index:q} --ifgs {input.ifgs:q} --date {params.date}"
        " --out-dir {output.timeseries:q} --out-index {output.index:q} --block {params.block}"
        " 2> {log:q} || sarstack_fail {log:q}"


rule insar:
    input:
        branch_targets("insar"),
