# RTC geolocation stability: select -> superset -> flatten -> tiles -> xcorr
# -> aggregate -> dates, plots. Per-date and per-pair stages scatter into chunk
# jobs (config `scatter`), each handling many dates/pairs in one process, and
# gather where the whole stack is needed. Files are the only interface.


checkpoint rtc_select:
    input:
        scenes=rtc_select_input,
    output:
        scenes=f"{RTC}/scenes.csv",
        grid=f"{RTC}/grid.json",
    log:
        f"{LOGS}/rtc/select.log",
    benchmark:
        f"{BENCH}/rtc/select.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        pattern=rtc_pattern(),
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
    shell:
        "python -m sarstack rtc_select --inputs {params.pattern:q}"
        " --scenes {output.scenes:q} --grid {output.grid:q} --tiles {params.tiles} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_superset:
    input:
        scenes=f"{RTC}/scenes.csv",
        grid=f"{RTC}/grid.json",
    output:
        # The index is written last: a job killed before it is redone on the
        # next run, whatever Snakemake's incomplete markers say (an empty
        # directory() output from a kill once passed for complete).
        index=f"{RTC}/superset/{{chunk}}/index.csv",
    log:
        f"{LOGS}/rtc/superset_{{chunk}}.log",
    benchmark:
        f"{BENCH}/rtc/superset_{{chunk}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        out_dir=lambda w, output: os.path.dirname(output.index),
        resampling=config["rtc"]["resampling"],
        block=BLOCK,
    shell:
        "python -m sarstack rtc_superset --scenes {input.scenes:q} --grid {input.grid:q}"
        " --chunk {wildcards.chunk} --resampling {params.resampling} --block {params.block}"
        " --out-dir {params.out_dir:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_flatten:
    input:
        superset=f"{RTC}/superset/{{chunk}}/index.csv",
        grid=f"{RTC}/grid.json",
    output:
        f"{RTC}/flat/{{chunk}}.json",
    log:
        f"{LOGS}/rtc/flatten_{{chunk}}.log",
    benchmark:
        f"{BENCH}/rtc/flatten_{{chunk}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        percentiles=" ".join(str(p) for p in config["rtc"]["percentiles"]),
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
        block=BLOCK,
        scale=config["rtc"]["scale"],
    shell:
        "python -m sarstack rtc_flatten --superset {input.superset:q} --grid {input.grid:q}"
        " --tiles {params.tiles} --percentiles {params.percentiles} --block {params.block}"
        " --scale {params.scale} --out {output:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_tiles:
    input:
        grid=f"{RTC}/grid.json",
        flat=rtc_flat_all,
    output:
        f"{RTC}/tiles.geojson",
    log:
        f"{LOGS}/rtc/tiles.log",
    benchmark:
        f"{BENCH}/rtc/tiles.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
    shell:
        "python -m sarstack rtc_tiles --grid {input.grid:q} --tiles {params.tiles}"
        " --out {output:q} {input.flat:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_xcorr:
    input:
        flat=rtc_flat_all,
        tiles=f"{RTC}/tiles.geojson",
    output:
        f"{RTC}/xcorr/{{chunk}}.csv",
    log:
        f"{LOGS}/rtc/xcorr_{{chunk}}.log",
    benchmark:
        f"{BENCH}/rtc/xcorr_{{chunk}}.tsv"
    conda:
        ENV
    threads: lambda wildcards: chunk_threads(rtc_n_pairs())
    resources:
        mem_mb=2000,
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
    input:
        xcorr=rtc_xcorr_all,
    output:
        offsets=f"{RTC}/offsets.csv",
        pairs=report(
            f"{RTC}/pairs.csv",
            category="RTC geolocation",
            subcategory="Verdict",
            caption="../report/rtc_pairs.rst",
        ),
        tiles=f"{RTC}/tiles.csv",
        summary=report(
            f"{RTC}/summary.csv",
            category="RTC geolocation",
            subcategory="Verdict",
            caption="../report/rtc_summary.rst",
        ),
    log:
        f"{LOGS}/rtc/aggregate.log",
    benchmark:
        f"{BENCH}/rtc/aggregate.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        requirement=opt("--requirement-m", config["rtc"]["requirement_m"]),
        min_ok=config["rtc"]["min_ok_tiles"],
    shell:
        "python -m sarstack rtc_aggregate {params.requirement} --min-ok-tiles {params.min_ok}"
        " --offsets {output.offsets:q} --pairs {output.pairs:q} --tiles {output.tiles:q}"
        " --summary {output.summary:q} {input.xcorr:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_plots:
    input:
        offsets=f"{RTC}/offsets.csv",
        pairs=f"{RTC}/pairs.csv",
        tiles=f"{RTC}/tiles.csv",
        geojson=f"{RTC}/tiles.geojson",
    output:
        pair=report(
            f"{RTC}/plots/pair_offsets.png",
            category="RTC geolocation",
            caption="../report/rtc_pair_offsets.rst",
        ),
        tile=report(
            f"{RTC}/plots/tile_mean_offsets.png",
            category="RTC geolocation",
            caption="../report/rtc_tile_mean.rst",
        ),
        time=report(
            f"{RTC}/plots/offsets_vs_time.png",
            category="RTC geolocation",
            caption="../report/rtc_offsets_time.rst",
        ),
        quiver=report(
            f"{RTC}/plots/tile_quiver.png",
            category="RTC geolocation",
            caption="../report/rtc_quiver.rst",
        ),
    log:
        f"{LOGS}/rtc/plots.log",
    benchmark:
        f"{BENCH}/rtc/plots.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        requirement=opt("--requirement-m", config["rtc"]["requirement_m"]),
    shell:
        "python -m sarstack rtc_plots --offsets {input.offsets:q} --pairs {input.pairs:q}"
        " --tiles {input.tiles:q} --geojson {input.geojson:q} {params.requirement}"
        " --out-pair {output.pair:q} --out-tile {output.tile:q} --out-time {output.time:q}"
        " --out-quiver {output.quiver:q} 2> {log:q} || sarstack_fail {log:q}"


rule rtc_dates:
    input:
        offsets=f"{RTC}/offsets.csv",
        pairs=f"{RTC}/pairs.csv",
    output:
        dates=f"{RTC}/dates.csv",
        tiles=f"{RTC}/dates_tiles.csv",
        plot=report(
            f"{RTC}/plots/date_offsets.png",
            category="RTC geolocation",
            caption="../report/rtc_dates.rst",
        ),
    log:
        f"{LOGS}/rtc/dates.log",
    benchmark:
        f"{BENCH}/rtc/dates.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        robust="--robust" if config["rtc"]["dates_method"] == "robust" else "",
    shell:
        "python -m sarstack rtc_dates --offsets {input.offsets:q} --pairs {input.pairs:q}"
        " --out {output.dates:q} --out-tiles {output.tiles:q} --plot {output.plot:q}"
        " {params.robust} 2> {log:q} || sarstack_fail {log:q}"


rule rtc:
    input:
        branch_targets("rtc"),
