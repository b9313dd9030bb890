"""Detector conditions of the evaluation corpus: what happens to the expected intensity on its way to a file.

:func:`detect` takes the noise-free far-field intensity of an object and a
:class:`DetectorSettings`, and returns the counts a detector records and the
mask a file would carry, in this order:

1. scale to ``peak_counts`` photons at the brightest pixel;
2. partial coherence: convolve with a Gaussian PSF (:func:`blur_intensity`);
3. add a smooth background (:func:`smooth_background`);
4. Poisson noise;
5. beamstop shadow, detector gap, saturation and hot pixels
   (:func:`cdi_dip.simulate.plant_defects`); the beamstop and the gap are
   marked in the mask only when the settings say so, saturated and hot
   pixels never are.

A frame that holds only the centre of the pattern (``kept_fraction`` below 1)
is cut before all this, on the object itself (:func:`truncate_pattern`, which
:mod:`.cases` applies), since the ground truth changes with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..prepare.margin import seen_on_frame
from ..simulate import _offsets, _smooth_noise, plant_defects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorSettings:
    """How a detector records one pattern.

    Attributes
    ----------
    peak_counts : float
        Expected photons at the brightest pixel of the coherent pattern (1e3 to 1e8 in the corpus).
    psf_sigma_px : float
        Standard deviation of the Gaussian PSF (partial coherence), pixels; 0: none.
    background_counts : float
        Mean smooth background per pixel, photons; 0: none.
    beamstop_px : float
        Radius of the beamstop shadow (zero counts) around the peak, pixels; 0: none.
    beamstop_masked : bool
        Whether the file's mask excludes the shadow.
    gap_px : int
        Width of a detector gap (zero counts) of constant index along the last axis, pixels; 0: none.
    gap_masked : bool
        Whether the file's mask excludes the gap.
    hot_pixels : int
        Isolated pixels set far above their neighbours (never masked).
    saturated_regions : int
        Clip the counts so that at least this many separate regions saturate (never masked); 0: none.
    kept_fraction : float
        Fraction (0.25-1) of the pattern's extent per axis that the frame holds: below 1 the frame
        is the centre of a larger pattern (:func:`truncate_pattern`), as on a real detector whose
        pixels are coarser than the object's detail; 1: the whole pattern.
    centre_offset_px : tuple of float
        Where the zero frequency falls inside its pixel: its displacement from the centre pixel
        ``n // 2``, pixels per axis (the first two or three are used), each within +-0.5; a real
        detector's direct beam falls anywhere in a pixel. Applied as a phase ramp on the object
        before its intensity is taken (:mod:`.cases`); the ground truth stays centred.
    """

    peak_counts: float
    psf_sigma_px: float = 0.0
    background_counts: float = 0.0
    beamstop_px: float = 0.0
    beamstop_masked: bool = True
    gap_px: int = 0
    gap_masked: bool = True
    hot_pixels: int = 0
    saturated_regions: int = 0
    kept_fraction: float = 1.0
    centre_offset_px: tuple[float, ...] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not np.isfinite(self.peak_counts) or self.peak_counts <= 0:
            raise InvalidInputError(f"peak_counts={self.peak_counts}: must be a positive number of photons")
        if not 0.25 <= self.kept_fraction <= 1.0:
            raise InvalidInputError(f"kept_fraction={self.kept_fraction}: must be between 0.25 and 1")
        if any(not abs(d) <= 0.5 for d in self.centre_offset_px):
            raise InvalidInputError(f"centre_offset_px={self.centre_offset_px}: each must be within +-0.5 pixel")
        for name in ("psf_sigma_px", "background_counts", "beamstop_px", "gap_px", "hot_pixels", "saturated_regions"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name}={getattr(self, name)}: must be >= 0")


@dataclass
class Detection:
    """What a detector recorded.

    Attributes
    ----------
    counts : numpy.ndarray, float32, frame shape
        Photon counts, defects included.
    valid : numpy.ndarray, bool, frame shape
        The mask a file carries: True = measured (masked beamstop and gap are False).
    defects : dict of str to numpy.ndarray of bool
        Planted pixels by reason (``beamstop``, ``gap``, ``saturated``, ``hot``), masked or not.
    saturation_counts : float or None
        The level the counts were clipped at.
    """

    counts: np.ndarray
    valid: np.ndarray
    defects: dict[str, np.ndarray] = field(default_factory=dict)
    saturation_counts: float | None = None


def truncated_shape(shape: Sequence[int], kept_fraction: float) -> tuple[int, ...]:
    """The frame a detector holding ``kept_fraction`` of a pattern per axis records: even sizes, at least 8 px."""
    return tuple(max(8, 2 * int(round(n * kept_fraction / 2))) if kept_fraction < 1 else int(n) for n in shape)


def truncate_pattern(obj: np.ndarray, kept_fraction: float) -> np.ndarray:
    """The object as a frame holding the centre of its pattern sees it: band-limited, on coarser pixels.

    The centred, unitary far field of ``obj`` is cut to the central
    :func:`truncated_shape` and transformed back. The result's far field is
    exactly that central part, so its expected intensity is what the cut
    frame records; it is the object low-pass filtered (soft edges, faint
    ringing outside the outline), sampled on pixels ``1 / kept_fraction``
    times coarser, which is what a reconstruction of a cut frame can recover.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D, centred
    kept_fraction : float
        0.25-1; 1 returns a copy.

    Returns
    -------
    numpy.ndarray, complex128, :func:`truncated_shape` of ``obj.shape``, centred
    """
    return seen_on_frame(obj, truncated_shape(np.shape(obj), kept_fraction))


def blur_intensity(intensity: np.ndarray, sigma_px: float) -> np.ndarray:
    """Convolve an intensity with a normalised Gaussian PSF (periodic, by FFT): partial coherence.

    Parameters
    ----------
    intensity : numpy.ndarray, real, 2D or 3D
    sigma_px : float
        PSF standard deviation, pixels; <= 0 returns a copy.

    Returns
    -------
    numpy.ndarray, float64, same shape
        Non-negative; the total is preserved.
    """
    intensity = np.asarray(intensity, dtype=np.float64)
    if sigma_px <= 0:
        return intensity.copy()
    freq2 = sum(np.fft.fftfreq(n).reshape([-1 if a == i else 1 for a in range(intensity.ndim)]) ** 2
                for i, n in enumerate(intensity.shape))
    blurred = np.fft.ifftn(np.fft.fftn(intensity) * np.exp(-2 * np.pi**2 * sigma_px**2 * freq2)).real
    return np.clip(blurred, 0.0, None)


def smooth_background(shape: Sequence[int], rng: np.random.Generator, mean_counts: float) -> np.ndarray:
    """A smooth, positive background (air and sample-holder scattering): broad radial fall-off with slow ripples.

    Parameters
    ----------
    shape : sequence of int
    rng : numpy.random.Generator
    mean_counts : float
        Mean photons per pixel.

    Returns
    -------
    numpy.ndarray, float64, ``shape``
    """
    frame = tuple(int(n) for n in shape)
    radius2 = sum((offset / (n / 2)) ** 2 for offset, n in zip(_offsets(frame), frame))
    ripple = 1 + 0.3 * np.clip(_smooth_noise(frame, rng, sigma_px=min(frame) / 8), -2, 2)
    background = np.exp(-radius2) * ripple
    return background * (mean_counts / background.mean())


def _planted(counts: np.ndarray, rng: np.random.Generator, centre: tuple[int, ...],
             settings: DetectorSettings):
    """:func:`plant_defects` with the settings; a pattern with too few bright regions saturates fewer."""
    def plant(regions: int):
        return plant_defects(counts.copy(), rng=rng, peak=centre, beamstop_radius_px=settings.beamstop_px,
                             gap_px=int(settings.gap_px), hot=int(settings.hot_pixels), saturated_regions=regions)

    for regions in range(int(settings.saturated_regions), 0, -1):
        try:
            return plant(regions)
        except InvalidInputError:
            log.info("corpus: no %d separate bright regions to saturate; trying fewer", regions)
    return plant(0)


def detect(expected: np.ndarray, settings: DetectorSettings, rng: np.random.Generator, *,
           peak: Sequence[int] | None = None) -> Detection:
    """The counts and mask a detector records from a noise-free intensity.

    Parameters
    ----------
    expected : numpy.ndarray, real, 2D or 3D
        Noise-free intensity, any scale (e.g. :func:`cdi_dip.simulate.expected_intensity`).
    settings : DetectorSettings
    rng : numpy.random.Generator
        Background, Poisson noise and hot pixel positions.
    peak : sequence of int, optional
        Where the zero frequency is (beamstop centre); default the frame centre ``n // 2``.

    Returns
    -------
    Detection
    """
    expected = np.asarray(expected, dtype=np.float64)
    top = expected.max()
    if not np.isfinite(top) or top <= 0:
        raise InvalidInputError("the expected intensity is zero (or not finite): nothing to detect")
    rate = blur_intensity(expected * (settings.peak_counts / top), settings.psf_sigma_px)
    if settings.background_counts > 0:
        rate = rate + smooth_background(rate.shape, rng, settings.background_counts)
    counts = rng.poisson(rate).astype(np.float32)
    centre = tuple(n // 2 for n in counts.shape) if peak is None else tuple(int(p) for p in peak)
    planted = _planted(counts, rng, centre, settings)
    valid = np.ones(counts.shape, dtype=bool)
    for reason, masked in (("beamstop", settings.beamstop_masked), ("gap", settings.gap_masked)):
        if masked and reason in planted.truth:
            valid &= ~planted.truth[reason]
    return Detection(counts=planted.counts, valid=valid, defects=planted.truth,
                     saturation_counts=planted.saturation_counts)
