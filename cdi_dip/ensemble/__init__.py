"""After the solver: alignment, registration, ensembles of runs and the PRTF.

One public job per module; all run on the host in NumPy, on centred arrays
(origin of every axis at index ``n // 2``):

- :mod:`.align`: :func:`align_object` puts one object in standard form
  (centre of mass at the frame centre, no phase ramp, twin by a fixed rule,
  zero mean phase);
- :mod:`.register`: :func:`compare_objects` registers an object onto a
  reference up to the trivial symmetries and returns a :class:`Comparison`
  (:func:`symmetry_adjusted_error`, :func:`pairwise_errors`);
- :mod:`.average`: :func:`ensemble_statistics` matches members onto the best
  one (:func:`match_to_reference`) and measures their spread
  (:class:`EnsembleResult`);
- :mod:`.prtf`: the phase-retrieval transfer function and resolution
  (:func:`compute_prtf`, :class:`PrtfResult`);
- :mod:`.fourier`: centred NumPy FFTs and linear phases (:func:`apply_ramp`),
  which the others share;
- :mod:`.vortices`: phase vortices (dislocations), found and modelled so that
  :func:`remove_phase_ramp` fits the ramp beside them.

Import from here (``from cdi_dip.ensemble import compare_objects``); the
submodules are the place to read.

The results (:class:`Comparison`, :class:`EnsembleResult`,
:class:`PrtfResult`) are plain data in :mod:`cdi_dip.types`, re-exported
here; :mod:`cdi_dip.io.result_cxi` stores them in a result file.
"""

from .align import (
    align_map,
    align_object,
    centre_of_mass,
    centre_of_mass_shift,
    centring_weights,
    crop_to_support,
    pad_or_crop,
    remove_phase_offset,
    remove_phase_ramp,
    resolve_twin,
    restart_object,
    subpixel_shift,
    twin,
    twin_statistic,
)
from .average import (
    SIGNIFICANT_AMPLITUDE,
    EnsembleResult,
    apply_transform,
    ensemble_statistics,
    match_to_reference,
    move_support,
)
from .fourier import apply_ramp, centred_fft, centred_ifft
from .prtf import PRTF_THRESHOLD, PrtfResult, compute_prtf, object_pixel_size_m, prtf, resolution_from_prtf
from .register import Comparison, compare_objects, pairwise_errors, symmetry_adjusted_error

__all__ = [
    # align
    "align_map", "align_object", "centre_of_mass", "centre_of_mass_shift", "centring_weights", "crop_to_support",
    "pad_or_crop", "remove_phase_offset", "remove_phase_ramp", "resolve_twin", "restart_object", "subpixel_shift",
    "twin", "twin_statistic",
    # register
    "Comparison", "compare_objects", "pairwise_errors", "symmetry_adjusted_error",
    # average
    "SIGNIFICANT_AMPLITUDE", "EnsembleResult", "apply_transform", "ensemble_statistics", "match_to_reference",
    "move_support",
    # prtf
    "PRTF_THRESHOLD", "PrtfResult", "compute_prtf", "object_pixel_size_m", "prtf", "resolution_from_prtf",
    # fourier
    "apply_ramp", "centred_fft", "centred_ifft",
]
