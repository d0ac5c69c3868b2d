# RTC geolocation stability: select -> superset -> flatten -> tiles -> xcorr
# (one job per pair) -> aggregate -> plots. Files are the only interface.


checkpoint rtc_select:
    input:
        script=f"{SCRIPTS}/rtc_select.py",
        scenes=rtc_select_input,
    output:
        scenes=f"{RTC}/scenes.csv",
        grid=f"{RTC}/grid.json",
    params:
        pattern=rtc_pattern(),
    log:
        f"{LOGS}/rtc/select.log",
    benchmark:
        f"{BENCH}/rtc/select.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} --inputs {params.pattern:q}"
        " --scenes {output.scenes} --grid {output.grid} 2> {log}"


rule rtc_superset:
    input:
        script=f"{SCRIPTS}/rtc_superset.py",
        scene=rtc_scene_path,
        grid=f"{RTC}/grid.json",
    output:
        f"{RTC}/superset/{{date}}.tif",
    params:
        resampling=config["rtc"]["resampling"],
        block=BLOCK,
    log:
        f"{LOGS}/rtc/superset_{{date}}.log",
    benchmark:
        f"{BENCH}/rtc/superset_{{date}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        ENV
    shell:
        "python {input.script} --scene {input.scene:q} --grid {input.grid}"
        " --resampling {params.resampling} --block {params.block} --out {output} 2> {log}"


rule rtc_flatten:
    input:
        script=f"{SCRIPTS}/rtc_flatten.py",
        scene=f"{RTC}/superset/{{date}}.tif",
    output:
        f"{RTC}/flat/{{date}}.tif",
    params:
        percentiles=" ".join(str(p) for p in config["rtc"]["percentiles"]),
        block=BLOCK,
    log:
        f"{LOGS}/rtc/flatten_{{date}}.log",
    benchmark:
        f"{BENCH}/rtc/flatten_{{date}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        ENV
    shell:
        "python {input.script} --src {input.scene} --percentiles {params.percentiles}"
        " --block {params.block} --out {output} 2> {log}"


rule rtc_tiles:
    input:
        script=f"{SCRIPTS}/rtc_tiles.py",
        grid=f"{RTC}/grid.json",
        flat=rtc_flat_all,
    output:
        f"{RTC}/tiles.geojson",
    params:
        tiles=" ".join(str(t) for t in config["rtc"]["tiles"]),
    log:
        f"{LOGS}/rtc/tiles.log",
    benchmark:
        f"{BENCH}/rtc/tiles.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=20,
    conda:
        ENV
    shell:
        "python {input.script} --grid {input.grid} --tiles {params.tiles}"
        " --out {output} {input.flat} 2> {log}"


rule rtc_xcorr:
    input:
        script=f"{SCRIPTS}/rtc_xcorr.py",
        reference=f"{RTC}/flat/{{ref}}.tif",
        secondary=f"{RTC}/flat/{{sec}}.tif",
        tiles=f"{RTC}/tiles.geojson",
    output:
        f"{RTC}/xcorr/{{ref}}_{{sec}}.csv",
    params:
        upsample=config["rtc"]["upsample_factor"],
        max_nan=config["rtc"]["max_nan_fraction"],
        preprocess=config["rtc"]["preprocess"],
        iterations=config["rtc"]["refine_iterations"],
        block=BLOCK,
        min_quality=(
            ""
            if config["rtc"]["min_quality"] is None
            else f"--min-quality {config['rtc']['min_quality']}"
        ),
        max_shift=(
            ""
            if config["rtc"]["max_shift_px"] is None
            else f"--max-shift-px {config['rtc']['max_shift_px']}"
        ),
        jaxcache=JAXCACHE,
    log:
        f"{LOGS}/rtc/xcorr_{{ref}}_{{sec}}.log",
    benchmark:
        f"{BENCH}/rtc/xcorr_{{ref}}_{{sec}}.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        ENV
    shell:
        "python {input.script} --reference {input.reference} --secondary {input.secondary}"
        " --tiles {input.tiles} --upsample-factor {params.upsample}"
        " --max-nan-fraction {params.max_nan} --preprocess {params.preprocess}"
        " --refine-iterations {params.iterations} --block {params.block}"
        " {params.min_quality} {params.max_shift} {params.jaxcache} --out {output} 2> {log}"


rule rtc_aggregate:
    input:
        script=f"{SCRIPTS}/rtc_aggregate.py",
        xcorr=rtc_xcorr_all,
    output:
        offsets=f"{RTC}/offsets.csv",
        pairs=f"{RTC}/pairs.csv",
        tiles=f"{RTC}/tiles.csv",
        summary=f"{RTC}/summary.csv",
    params:
        requirement=(
            ""
            if config["rtc"]["requirement_m"] is None
            else f"--requirement-m {config['rtc']['requirement_m']}"
        ),
        min_ok=config["rtc"]["min_ok_tiles"],
    log:
        f"{LOGS}/rtc/aggregate.log",
    benchmark:
        f"{BENCH}/rtc/aggregate.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} {params.requirement} --min-ok-tiles {params.min_ok}"
        " --offsets {output.offsets} --pairs {output.pairs} --tiles {output.tiles}"
        " --summary {output.summary} {input.xcorr} 2> {log}"


rule rtc_plots:
    input:
        script=f"{SCRIPTS}/rtc_plots.py",
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
    params:
        requirement=(
            ""
            if config["rtc"]["requirement_m"] is None
            else f"--requirement-m {config['rtc']['requirement_m']}"
        ),
    log:
        f"{LOGS}/rtc/plots.log",
    benchmark:
        f"{BENCH}/rtc/plots.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} --offsets {input.offsets} --pairs {input.pairs}"
        " --tiles {input.tiles} --geojson {input.geojson} {params.requirement}"
        " --out-pair {output.pair} --out-tile {output.tile} --out-time {output.time}"
        " --out-quiver {output.quiver} 2> {log}"


rule rtc_dates:
    input:
        script=f"{SCRIPTS}/rtc_dates.py",
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
    params:
        robust="--robust" if config["rtc"]["dates_method"] == "robust" else "",
        jaxcache=JAXCACHE,
    log:
        f"{LOGS}/rtc/dates.log",
    benchmark:
        f"{BENCH}/rtc/dates.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        ENV
    shell:
        "python {input.script} --offsets {input.offsets} --pairs {input.pairs}"
        " --out {output.dates} --out-tiles {output.tiles} --plot {output.plot}"
        " {params.robust} {params.jaxcache} 2> {log}"


rule rtc:
    input:
        rtc_targets(),
