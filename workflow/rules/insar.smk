# InSAR time series: select -> reference point -> network inversion (block-wise)
# -> velocity -> plots. Files are the only interface.


rule insar_select:
    input:
        script=f"{SCRIPTS}/insar_select.py",
        files=insar_select_input,
    output:
        f"{INSAR}/ifgs.csv",
    params:
        unwrapped=insar_globs()[0],
        conncomp=opt("--conncomp", insar_globs()[1]),
        correlation=opt("--correlation", insar_globs()[2]),
        date_format=ICFG["date_format"],
    log:
        f"{LOGS}/insar/select.log",
    benchmark:
        f"{BENCH}/insar/select.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} --unwrapped {params.unwrapped:q} {params.conncomp}"
        " {params.correlation} --date-format {params.date_format:q} --out {output} 2> {log}"


rule insar_reference:
    input:
        script=f"{SCRIPTS}/insar_reference.py",
        ifgs=f"{INSAR}/ifgs.csv",
        aux=insar_aux_files(),
    output:
        f"{INSAR}/reference_point.txt",
    params:
        point=opt("--point", ICFG["reference_point"]),
        quality=opt("--quality", ICFG["quality"]),
        mask=opt("--mask", ICFG["mask"]),
        threshold=ICFG["reference_threshold"],
        block=BLOCK,
    log:
        f"{LOGS}/insar/reference.log",
    benchmark:
        f"{BENCH}/insar/reference.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    shell:
        "python {input.script} --ifgs {input.ifgs} {params.point} {params.quality}"
        " {params.mask} --threshold {params.threshold} --block {params.block}"
        " --out {output} 2> {log}"


rule insar_invert:
    input:
        script=f"{SCRIPTS}/insar_invert.py",
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
        aux=insar_aux_files(),
    output:
        timeseries=directory(f"{INSAR}/timeseries"),
        residuals=directory(f"{INSAR}/residuals"),
        residual_sum=f"{INSAR}/residual_sum.tif",
        index=f"{INSAR}/timeseries.csv",
    params:
        out_dir=lambda w, output: os.path.dirname(output.index),
        method=ICFG["method"],
        wavelength=opt("--wavelength", ICFG["wavelength"]),
        mask=opt("--mask", ICFG["mask"]),
        block=IBLOCK,
        tol=ICFG["l1_tolerance"],
        max_iter=ICFG["l1_max_iterations"],
        jaxcache=JAXCACHE,
    log:
        f"{LOGS}/insar/invert.log",
    benchmark:
        f"{BENCH}/insar/invert.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    shell:
        "python {input.script} --ifgs {input.ifgs} --reference {input.reference}"
        " --out-dir {params.out_dir} --index {output.index} --method {params.method}"
        " {params.wavelength} {params.mask} --block {params.block}"
        " --l1-tolerance {params.tol} --l1-max-iterations {params.max_iter}"
        " {params.jaxcache} 2> {log}"


rule insar_velocity:
    input:
        script=f"{SCRIPTS}/insar_velocity.py",
        index=f"{INSAR}/timeseries.csv",
        ifgs=f"{INSAR}/ifgs.csv",
        timeseries=f"{INSAR}/timeseries",
    output:
        velocity=report(
            f"{INSAR}/velocity.tif", category="InSAR", caption="../report/insar_velocity_tif.rst"
        ),
        std=f"{INSAR}/velocity_std.tif",
    params:
        block=BLOCK,
        jaxcache=JAXCACHE,
    log:
        f"{LOGS}/insar/velocity.log",
    benchmark:
        f"{BENCH}/insar/velocity.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        ENV
    shell:
        "python {input.script} --index {input.index} --ifgs {input.ifgs}"
        " --out {output.velocity} --out-std {output.std} --block {params.block}"
        " {params.jaxcache} 2> {log}"


rule insar_plots:
    input:
        script=f"{SCRIPTS}/insar_plots.py",
        velocity=f"{INSAR}/velocity.tif",
        index=f"{INSAR}/timeseries.csv",
        ifgs=f"{INSAR}/ifgs.csv",
        reference=f"{INSAR}/reference_point.txt",
    output:
        velocity=report(
            f"{INSAR}/plots/velocity.png", category="InSAR", caption="../report/insar_velocity.rst"
        ),
        series=report(
            f"{INSAR}/plots/timeseries.png", category="InSAR", caption="../report/insar_series.rst"
        ),
        network=report(
            f"{INSAR}/plots/network.png", category="InSAR", caption="../report/insar_network.rst"
        ),
    log:
        f"{LOGS}/insar/plots.log",
    benchmark:
        f"{BENCH}/insar/plots.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} --velocity {input.velocity} --index {input.index}"
        " --ifgs {input.ifgs} --reference {input.reference} --out-velocity {output.velocity}"
        " --out-series {output.series} --out-network {output.network} 2> {log}"


rule insar:
    input:
        insar_targets(),
