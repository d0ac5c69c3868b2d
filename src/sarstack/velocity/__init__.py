"""Per-pixel velocity: the linear fit of a displacement series, plain and
weighted, and the general deformation model (offset + velocity, optional
annual and semiannual sinusoids and Heaviside steps, see
:class:`DeformationModel` and :func:`fit_model`). NumPy (float64 inside), so
the velocity stage needs no JAX; the results are cast to float32 unless the
input is float64. :func:`velocity` and :func:`velocity_weighted` are
re-exported by :mod:`sarstack.timeseries`.
"""

from sarstack.velocity.far_field import (  # noqa: F401
    FAR_FIELD_CELLS,
    FAR_FIELD_FRACTION,
    FAR_FIELD_QUIET,
    FAR_FIELD_SIGMAS,
    WELL_CONSTRAINED_STD,
    FarField,
    far_field,
    well_constrained,
)
from sarstack.velocity.linear import (  # noqa: F401
    AR1_MAX_RHO,
    UNCERTAINTY_METHODS,
    NetworkNoise,
    VelocityFit,
    ar1_variance_factor,
    check_uncertainty,
    network_variance,
    velocity,
    velocity_weighted,
)
from sarstack.velocity.model import (  # noqa: F401
    MODEL_KEY,
    RCOND,
    SEASONAL_EPOCH,
    DeformationModel,
    design_matrix,
    fit_design,
    fit_model,
    model_error,
    output_units,
)
