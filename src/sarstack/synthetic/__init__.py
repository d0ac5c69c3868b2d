"""Synthetic RTC stacks with a known geolocation error per date.

:func:`make_rtc_stack` writes a small stack of HyP3-style RTC GeoTIFFs (VV,
linear power, float32) of one textured ground scene, each date displaced by a
known sub-pixel geolocation error, with moving frame extents, speckle and
slanted invalid swath edges, and optionally bright point targets (corner
reflectors) whose surveyed positions go to ``reflectors.csv``: each date's
absolute offset at the targets is then that date's known error.
:func:`expected_pair_offsets` turns the recorded
truth into the offsets a co-registration tool should measure for a pair
network. :func:`make_ifg_stack` writes unwrapped interferograms of a known
phase history.

Each writer is a simulation plus file writing: :func:`simulate_rtc_stack` and
:func:`simulate_ifg_stack` return the same arrays and truth in memory
(:class:`RtcSimulation`, :class:`IfgSimulation`) without touching the disk.

Convention
----------
A ground feature at true map position ``P`` appears at
``P + (east_px * pixel_size, north_px * pixel_size)`` (east, north) in that
date's GeoTIFF. For a pair ``(i, j)`` (reference ``i``, secondary ``j``) the
expected measured offset of the secondary relative to the reference is
``east_m = (east_px[j] - east_px[i]) * pixel_size`` and likewise north. With
north-up transforms, north +1 pixel is row -1.
"""

from sarstack.synthetic.events import (  # noqa: F401
    EventStack,
    simulate_event_pairs,
)
from sarstack.synthetic.insar import (  # noqa: F401
    IFG_COLUMNS,
    IfgSimulation,
    make_ifg_stack,
    simulate_ifg_stack,
)
from sarstack.synthetic.rtc import (  # noqa: F401
    REFLECTOR_CSV_COLUMNS,
    TRUTH_COLUMNS,
    RtcSimulation,
    expected_pair_offsets,
    make_rtc_stack,
    simulate_rtc_stack,
)
