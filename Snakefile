# sarstack: RTC geolocation stability and InSAR time series for SAR stacks.
# This file only validates the config and includes the rule files; see README.md.
from snakemake.utils import min_version

min_version("9.0")

# config/config.yaml (the demo) is loaded in common.smk only when no --configfile
# is given, so a user's config never inherits the demo.


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/rtc.smk"
include: "workflow/rules/insar.smk"


# On a cluster executor (profiles/slurm) these run on the submitting host, not
# as scheduler jobs: each reads file headers or small tables (or writes the
# small demo stacks) in about a second, less than one scheduler round trip.
localrules:
    all,
    rtc,
    insar,
    demo_rtc_stack,
    demo_insar_stack,
    rtc_select,
    insar_select,
    rtc_stacks_summary,
    quality_dates,
    demo_rtc_check,
    demo_insar_check,


rule all:
    default_target: True
    input:
        all_targets(),


onstart:
    acquire_output_lock()


onsuccess:
    release_output_lock()
    stop_scheduler_wakeups()
    print_run_summary()


onerror:
    release_output_lock()
    stop_scheduler_wakeups()
    report_job_errors()
    write_stacks_summary_after_failure()
