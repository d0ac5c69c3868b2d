# RTC geolocation stability: select -> superset -> flatten -> tiles -> xcorr
# -> aggregate -> dates, plots; absolute geolocation against point targets
# (reflectors) beside it. Per-date and per-pair stages scatter into chunk jobs
# (config `scatter`), each handling many dates/pairs in one process, and gather
# where the whole stack is needed. Every rule runs once per stack (wildcard
# {stack}, see common.smk); stacks_summary gathers the stacks. Files are the
# only interface.


checkpoint rtc_select:
    input:
        scenes=rtc_select_input,
    output:
        scenes=f"{RTC}/{{stack}}scenes.csv",
        grid=f"{RTC}/{{stack}}grid.json",
    log:
        f"{LOGS}/rtc/{{stack}}select.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}select.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.11 GB (rtc-4096x24, rtc-many), with a margin
        mem_mb=500,
        runtime=10,
    params:
        pattern=rtc_pattern,
        key=lambda w: f"rtc.stacks.{STACK_NAMES[w.stack]}" if w.stack else "rtc.inputs",
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
        drop="--drop-misplaced" if RCFG["misplaced"] == "drop" else "",
        # Not passed on: a change of an input file's size or mtime reruns this job.
        fingerprint=rtc_select_fingerprint,
    shell:
        "python -m sarstack rtc_select --inputs {params.pattern:q} --key {params.key:q}"
        " --scenes {output.scenes:q} --grid {output.grid:q} --tiles {params.tiles} {params.drop}"
        " 2> {log:q} || sarstack_fail {log:q}; grep -h ' WARNING ' {log:q} >&2 || true"


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
        f"{LOGS}/rtc/{{stack}}flatten_{{chunk}}.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}flatten_{{chunk}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.17 GB at 4096², 0.39 GB at 8192², with a margin
        mem_mb=800,
        runtime=20,
    params:
        out_dir=lambda w, output: os.path.dirname(output.superset),
        resampling=config["rtc"]["resampling"],
        block=BLOCK,
        scale=config["rtc"]["scale"],
        nodata=opt("--nodata", config["rtc"]["nodata"]),
        percentiles=" ".join(str(p) for p in config["rtc"]["percentiles"]),
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
    shell:
        "python -m sarstack rtc_superset --scenes {input.scenes:q} --grid {input.grid:q}"
        " --chunk {wildcards.chunk} --resampling {params.resampling} --block {params.block}"
        " --scale {params.scale} {params.nodata} --out-dir {params.out_dir:q}"
        " :: rtc_flatten --superset {output.superset:q} --grid {input.grid:q}"
        " --tiles {params.tiles} --percentiles {params.percentiles} --block {params.block}"
        " --scale {params.scale} --out {output.flat:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_tiles:
    input:
        grid=f"{RTC}/{{stack}}grid.json",
        flat=rtc_flat_all,
    output:
        f"{RTC}/{{stack}}tile_layout.geojson",
    log:
        f"{LOGS}/rtc/{{stack}}tiles.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}tiles.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # tables only (a few MB), with a margin
        mem_mb=500,
        runtime=20,
    params:
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
    shell:
        "python -m sarstack rtc_tiles --grid {input.grid:q} --tiles {params.tiles}"
        " --out {output:q} {input.flat:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_xcorr:
    input:
        flat=rtc_flat_all,
        tiles=f"{RTC}/{{stack}}tile_layout.geojson",
    output:
        f"{RTC}/{{stack}}xcorr/{{chunk}}.csv",
    log:
        f"{LOGS}/rtc/{{stack}}xcorr_{{chunk}}.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}xcorr_{{chunk}}.tsv"
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(*rtc_pair_chunks(wildcards), share=RTC_SHARE)
    resources:
        # measured peak 0.26 GB at 4096², 0.42 GB at 8192² (4 and 1 pairs per job), with a margin
        mem_mb=800,
        runtime=30,
    params:
        pairs=config["rtc"]["pairs"],
        upsample=config["rtc"]["upsample_factor"],
        max_nan=config["rtc"]["max_nan_fraction"],
        preprocess=config["rtc"]["preprocess"],
        iterations=config["rtc"]["refine_iterations"],
        block=BLOCK,
        min_quality=opt("--min-quality", config["rtc"]["min_quality"]),
        max_shift=opt("--max-shift-px", config["rtc"]["max_shift_px"]),
    shell:
        "python -m sarstack rtc_xcorr --flat {input.flat:q} --tiles {input.tiles:q}"
        " --pairs {params.pairs} --chunk {wildcards.chunk} --upsample-factor {params.upsample}"
        " --max-nan-fraction {params.max_nan} --preprocess {params.preprocess}"
        " --refine-iterations {params.iterations} --block {params.block} --threads {threads}"
        " {params.min_quality} {params.max_shift} --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_aggregate:
    # rtc_aggregate (tables, verdict), rtc_dates (per-date offsets) and
    # rtc_plots, one after the other in one process: one start-up (and one
    # matplotlib import) per stack instead of three.
    input:
        xcorr=rtc_xcorr_all,
        layout=f"{RTC}/{{stack}}tile_layout.geojson",
    output:
        geojson=f"{RTC}/{{stack}}tiles.geojson",
        vectors=f"{RTC}/{{stack}}tile_vectors.geojson",
        offsets=f"{RTC}/{{stack}}offsets.csv",
        pairs=report(
            f"{RTC}/{{stack}}pairs.csv",
            category="RTC geolocation",
            subcategory="{stack}Verdict",
            caption="../report/rtc_pairs.rst",
        ),
        tiles=f"{RTC}/{{stack}}tiles.csv",
        summary=report(
            f"{RTC}/{{stack}}summary.csv",
            category="RTC geolocation",
            subcategory="{stack}Verdict",
            caption="../report/rtc_summary.rst",
        ),
        dates=f"{RTC}/{{stack}}dates.csv",
        dates_tiles=f"{RTC}/{{stack}}dates_tiles.csv",
        date_plot=report(
            f"{RTC}/{{stack}}plots/date_offsets.png",
            category="RTC geolocation",
            subcategory="{stack}Figures",
            caption="../report/rtc_dates.rst",
        ),
        pair_plot=report(
            f"{RTC}/{{stack}}plots/pair_offsets.png",
            category="RTC geolocation",
            subcategory="{stack}Figures",
            caption="../report/rtc_pair_offsets.rst",
        ),
        tile_plot=report(
            f"{RTC}/{{stack}}plots/tile_mean_offsets.png",
            category="RTC geolocation",
            subcategory="{stack}Figures",
            caption="../report/rtc_tile_mean.rst",
        ),
        time_plot=report(
            f"{RTC}/{{stack}}plots/offsets_vs_time.png",
            category="RTC geolocation",
            subcategory="{stack}Figures",
            caption="../report/rtc_offsets_time.rst",
        ),
        quiver_plot=report(
            f"{RTC}/{{stack}}plots/tile_quiver.png",
            category="RTC geolocation",
            subcategory="{stack}Figures",
            caption="../report/rtc_quiver.rst",
        ),
    log:
        f"{LOGS}/rtc/{{stack}}aggregate.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}aggregate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.16 GB (rtc-4096x24, rtc-many), with a margin
        mem_mb=500,
        runtime=10,
    params:
        requirement=opt("--requirement-m", config["rtc"]["requirement_m"]),
        min_ok=config["rtc"]["min_ok_tiles"],
        robust="--robust" if config["rtc"]["dates_method"] == "robust" else "",
    shell:
        "python -m sarstack rtc_aggregate {params.requirement} --min-ok-tiles {params.min_ok}"
        " --offsets {output.offsets:q} --pairs {output.pairs:q} --tiles {output.tiles:q}"
        " --summary {output.summary:q} --layout {input.layout:q} --out-geojson {output.geojson:q}"
        " --out-vectors {output.vectors:q} {input.xcorr:q}"
        " :: rtc_dates --offsets {output.offsets:q} --pairs {output.pairs:q}"
        " --out {output.dates:q} --out-tiles {output.dates_tiles:q} --plot {output.date_plot:q}"
        " {params.robust} {params.requirement}"
        " :: rtc_plots --offsets {output.offsets:q} --pairs {output.pairs:q}"
        " --tiles {output.tiles:q} --geojson {input.layout:q} {params.requirement}"
        " --out-pair {output.pair_plot:q} --out-tile {output.tile_plot:q}"
        " --out-time {output.time_plot:q} --out-quiver {output.quiver_plot:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


rule rtc_reflectors:
    input:
        scenes=f"{RTC}/{{stack}}scenes.csv",
        reflectors=lambda w: rtc_reflectors_file() or [],
    output:
        reflectors=f"{RTC}/{{stack}}reflectors.csv",
        absolute=report(
            f"{RTC}/{{stack}}absolute.csv",
            category="RTC geolocation",
            subcategory="{stack}Absolute",
            caption="../report/rtc_absolute.rst",
        ),
        plot=report(
            f"{RTC}/{{stack}}plots/absolute_offsets.png",
            category="RTC geolocation",
            subcategory="{stack}Absolute",
            caption="../report/rtc_absolute.rst",
        ),
    log:
        f"{LOGS}/rtc/{{stack}}reflectors.log",
    benchmark:
        f"{BENCH}/rtc/{{stack}}reflectors.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        reflectors_fingerprint=user_files_fingerprint(RCFG["reflectors"]),
        chip=RCFG["reflector_chip_px"],
        search=RCFG["reflector_search_px"],
        pcr=RCFG["reflector_min_pcr_db"],
        edge=RCFG["reflector_edge_px"],
        point=str(RCFG["reflector_pixel_is_point"]).lower(),
        scale=RCFG["scale"],
        requirement=opt("--requirement-m", RCFG["requirement_m"]),
    shell:
        "python -m sarstack rtc_reflectors --scenes {input.scenes:q} --reflectors {input.reflectors:q}"
        " --chip-px {params.chip} --search-px {params.search} --min-pcr-db {params.pcr}"
        " --edge-px {params.edge}"
        " --pixel-is-point {params.point} --scale {params.scale} {params.requirement}"
        " --out-reflectors {output.reflectors:q} --out-absolute {output.absolute:q}"
        " --plot {output.plot:q} 2> {log:q} || sarstack_fail {log:q}"


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
        f"{LOGS}/rtc/stacks_summary.log",
    benchmark:
        f"{BENCH}/rtc/stacks_summary.tsv"
    conda:
        ENV
    threads: 1
    resources:
        # measured peak 0.14 GB (rtc-many), with a margin
        mem_mb=500,
        runtime=10,
    params:
        stacks=stacks_summary_args,
        requirement=opt("--requirement-m", RCFG["requirement_m"]),
        absolute="--absolute" if rtc_reflectors_file() else "",
    shell:
        "python -m sarstack rtc_stacks_summary {params.stacks} {params.requirement} {params.absolute}"
        " --out {output.summary:q} --out-overall {output.overall:q} --plot {output.plot:q}"
        " 2> {log:q} || sarstack_fail {log:q}"


rule rtc:
    input:
        branch_targets("rtc"),
