# Embedded demo: synthetic stacks with known truth, used when the config points
# at no real inputs (rtc.inputs: null), and the check of results against truth.


rule demo_rtc_stack:
    output:
        **DEMO_RTC_REFLECTORS,
        truth=f"{DEMO}/rtc/truth.csv",
    log:
        stage_log("demo/rtc_stack"),
    benchmark:
        stage_benchmark("demo/rtc_stack")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("demo_rtc_stack"),
    params:
        opts=stage_opts("demo_rtc_stack"),
    shell:
        stage_shell("python -m sarstack demo_rtc_stack {params.opts} --truth {output.truth:q}")


rule demo_rtc_check:
    input:
        **DEMO_RTC_ABSOLUTE_IN,
        truth=f"{DEMO}/rtc/truth.csv",
        pairs=f"{RTC}/pairs.csv",
    output:
        **DEMO_RTC_ABSOLUTE_OUT,
        accuracy=report(
            f"{DEMO}/rtc_accuracy.csv",
            category="Demo accuracy",
            caption="../report/demo_rtc_accuracy.rst",
        ),
    log:
        stage_log("demo/rtc_check"),
    benchmark:
        stage_benchmark("demo/rtc_check")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("demo_rtc_check"),
    params:
        absolute=demo_absolute_args,
    shell:
        stage_shell(
            "python -m sarstack demo_rtc_check --truth {input.truth:q} --pairs {input.pairs:q}"
            " {params.absolute:q} --out {output.accuracy:q}"
        )


rule demo_insar_stack:
    output:
        truth=f"{DEMO}/insar/truth.csv",
    log:
        stage_log("demo/insar_stack"),
    benchmark:
        stage_benchmark("demo/insar_stack")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("demo_insar_stack"),
    params:
        opts=stage_opts("demo_insar_stack"),
    shell:
        stage_shell("python -m sarstack demo_insar_stack {params.opts} --truth {output.truth:q}")


rule demo_insar_check:
    input:
        truth=f"{DEMO}/insar/truth.csv",
        index=f"{INSAR}/timeseries.csv",
        velocity=f"{INSAR}/velocity.tif",
        reference=f"{INSAR}/reference_point.txt",
    output:
        report(
            f"{DEMO}/insar_accuracy.csv",
            category="Demo accuracy",
            caption="../report/demo_insar_accuracy.rst",
        ),
    log:
        stage_log("demo/insar_check"),
    benchmark:
        stage_benchmark("demo/insar_check")
    conda:
        ENV
    threads: 1
    resources:
        **stage_resources("demo_insar_check"),
    shell:
        stage_shell(
            "python -m sarstack demo_insar_check --truth {input.truth:q} --index {input.index:q}"
            " --velocity {input.velocity:q} --reference {input.reference:q} --out {output:q}"
        )
