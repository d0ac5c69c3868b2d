"""sarstack: RTC geolocation stability and InSAR time series for SAR image stacks.

The package holds pure, typed kernels (``xcorr``, ``rtc``, ``timeseries``) and
keeps file I/O in ``sarstack.io``. The Snakemake workflow in ``workflow/`` calls
thin scripts that read files, call these kernels and write files.
"""

from sarstack.errors import SarstackError

__all__ = ["SarstackError"]
__version__ = "0.1.0"
