"""Batched sub-pixel cross-correlation of image tiles (NumPy / SciPy, float32).

Two steps:

* :func:`prepare_tiles` turns a stack of RTC linear-power tiles with NaN for
  invalid pixels into finite float32 tiles ready for correlation (dB scaling,
  mean removal, NaN -> 0, edge taper) and reports the valid-pixel fraction.
* :func:`phase_correlate` estimates, for every tile pair of two stacks at once,
  the translation that registers ``mov`` onto ``ref``, with the same result and
  sign convention as ``skimage.registration.phase_cross_correlation(ref, mov,
  normalization=None, upsample_factor=uf)[0]``, plus two quality measures.

The shift algorithm is the single-step DFT method of Guizar-Sicairos, Thurman &
Fienup (2008): an integer-lag peak from the FFT cross-correlation surface,
refined on a ``1/uf`` grid by a matrix-multiply DFT evaluated only in a small
neighbourhood of that peak.

Implementation: real FFTs from :mod:`scipy.fft` (pocketfft, float32 in and
complex64 out), the rest in NumPy. The inverse transform of the cross-power
spectrum is split into an in-place inverse over rows and a real inverse over
columns, and the upsampled DFT works from that row-inverse spectrum (a
Dirichlet row kernel, then the half-spectrum column products), so no spectrum
is copied. Tiles are processed in chunks of at most :data:`CHUNK_PIXELS`
pixels, spread over a pool of threads (each function's ``threads``; the FFTs,
ufuncs and BLAS calls release the GIL); memory follows the chunk and batch
size, nothing is compiled, and a tile's result does not depend on the batch,
chunk or thread count. :func:`register_tiles` keeps each tile's reference
spectrum and its untapered moving spectrum across the re-centring passes and
shifts in the Fourier domain.

JAX is not used: for the same three transforms XLA's CPU FFT took more CPU
time than pocketfft, and compiling per tile shape cost seconds per job; this
module does not import it. Everything runs in float32 / complex64 with float64
scalar bookkeeping.
"""

from sarstack.xcorr.register import (  # noqa: F401
    TileProducts,
    phase_correlate,
    register_products,
    register_tiles,
    tile_products,
)
from sarstack.xcorr.spectra import (  # noqa: F401
    BLAS_SINGLE_THREAD_MNK,
)
from sarstack.xcorr.tiles import (  # noqa: F401
    CHUNK_PIXELS,
    PRESETS,
    TUKEY_ALPHA,
    prepare_tiles,
    taper_efficiency,
)
