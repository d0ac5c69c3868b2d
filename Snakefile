# sarstack: RTC geolocation stability and InSAR time series for SAR stacks.
# This file only validates the config and includes the rule files; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/rtc.smk"
include: "workflow/rules/insar.smk"


rule all:
    default_target: True
    input:
        all_targets(),
