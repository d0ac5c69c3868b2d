"""InSAR branch, file level: find and check the interferogram stack, build the
validity / quality / conncomp rasters for the reference point, and run the
block-wise inversion and velocity fit through :mod:`sarstack.io`.

The maths lives in :mod:`sarstack.timeseries`; this module only streams
rasters block by block, so memory follows ``block_shape``, not the scene.
"""

from sarstack.insar.common import (  # noqa: F401
    COUNT_NODATA,
    check_range,
)
from sarstack.insar.diagnostics import (  # noqa: F401
    closure_count,
    conncomp_count,
    temporal_average,
)
from sarstack.insar.gather import (  # noqa: F401
    gather_stats,
    gather_strips,
)
from sarstack.insar.invert import (  # noqa: F401
    MAX_NUMPY_PATTERNS,
    STRIP_STATS,
    _solve_block,
    describe_method,
    invert_strip,
    strip_rows,
    strip_work,
    write_strip_stats,
)
from sarstack.insar.model import (  # noqa: F401
    velocity_files,
)
from sarstack.insar.outputs import (  # noqa: F401
    INVERSION_OUTPUTS,
    OUTPUTS_BY_NAME,
    InversionOutput,
    SolvedBlock,
    StripOutputs,
    ifg_residual_std,
)
from sarstack.insar.reference import (  # noqa: F401
    check_mask_grid,
    nearest_date,
    phase_roughness,
    point_valid_everywhere,
    read_mask,
    read_reference_point,
    reference_inputs,
    reference_phase,
    rereference_files,
)
from sarstack.insar.select import (  # noqa: F401
    Ifg,
    NetworkEdit,
    apply_closure_qc,
    ifg_table,
    read_ifg_table,
    select_ifgs,
)
