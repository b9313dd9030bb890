"""``--psf``: whether and how the reconstruction models partial coherence (no torch here).

The physics and the fit are in :mod:`cdi_dip.coherence`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidInputError

MAX_KERNEL_RADIUS_PX = 8
"""Largest half-width (pixels) of the kernel's box along an axis (and at most 1/8 of the axis)."""

DEFAULT_START_SIGMA_PX = 1.0
"""Width (Gaussian sigma, pixels) a fitted kernel starts from."""


@dataclass(frozen=True)
class PsfChoice:
    """What ``--psf`` asked for.

    Attributes
    ----------
    mode : str
        ``"none"`` (coherent), ``"fixed"`` (a Gaussian of ``sigma_px``),
        ``"pixel"`` (the detector's pixels integrate the intensity: a fixed
        box of one pixel along every axis, :func:`cdi_dip.coherence.pixel_kernel`),
        ``"fit"`` (Richardson-Lucy from a Gaussian of ``sigma_px``),
        ``"select"`` (runs alternate ``none`` and ``fit``; :func:`for_run`) or
        ``"compare"`` (a coherent reconstruction, then one with a fitted
        kernel, the lower free deviance kept: :mod:`cdi_dip.reconstruction`;
        a solver given it runs coherent).
    sigma_px : float
        Gaussian standard deviation, pixels of the detector frame.
    """

    mode: str = "none"
    sigma_px: float = DEFAULT_START_SIGMA_PX

    @property
    def enabled(self) -> bool:
        """Whether a solver given this choice blurs its model (``compare`` runs a solver coherent: the
        fitted-kernel challenger is a separate reconstruction, :mod:`cdi_dip.reconstruction`)."""
        return self.mode not in ("none", "compare")


def parse_psf(text: str | None) -> PsfChoice:
    """Parse ``--psf``: ``none``, ``auto`` (fit), ``auto,SIGMA``, ``select[,SIGMA]``, ``compare[,SIGMA]``,
    ``gaussian,SIGMA`` (fixed) or ``pixel`` (the pixels' integration, fixed).

    Raises
    ------
    InvalidInputError
        For anything else, or a sigma that is not a positive finite number of pixels.
    """
    spec = (text or "none").strip().lower()
    name, _, value = spec.partition(",")
    if name in ("none", "off") and not value:
        return PsfChoice()
    if name == "pixel" and not value:
        return PsfChoice("pixel")
    if name in ("auto", "gaussian", "select", "compare"):
        sigma = DEFAULT_START_SIGMA_PX
        if value:
            try:
                sigma = float(value)
            except ValueError:
                sigma = float("nan")
            if not math.isfinite(sigma) or not 0.05 <= sigma <= MAX_KERNEL_RADIUS_PX:
                raise InvalidInputError(f"psf {text!r}: SIGMA must be a number of pixels from 0.05 to "
                                        f"{MAX_KERNEL_RADIUS_PX}, e.g. --psf gaussian,1.0")
        elif name == "gaussian":
            raise InvalidInputError(f"psf {text!r}: give the width, e.g. --psf gaussian,1.0 (sigma in pixels)")
        return PsfChoice({"auto": "fit", "gaussian": "fixed", "select": "select", "compare": "compare"}[name], sigma)
    raise InvalidInputError(f"psf {text!r}: use none, auto, auto,SIGMA, select, compare, gaussian,SIGMA "
                            "(sigma in pixels) or pixel")


def for_run(choice: PsfChoice, index: int) -> PsfChoice:
    """The choice one random start (or warm-start run) uses: ``select`` alternates a coherent model
    (even ``index``) and a fitted kernel (odd ``index``), so that the free likelihood picks between them;
    ``compare`` is coherent in every run (its challenger is another reconstruction); any other choice is
    the same for every run."""
    if choice.mode == "compare":
        return PsfChoice()
    if choice.mode != "select":
        return choice
    return PsfChoice("fit", choice.sigma_px) if index % 2 else PsfChoice()


CHALLENGERS = ("kernel", "pixel", "deconvolved", "refined", "polished")
"""The challengers ``--psf compare`` can run against the coherent result (``psf_challengers``): ``kernel``, a
projection reconstruction fitting a kernel; ``pixel``, a projection reconstruction whose model integrates the
intensity over the detector's pixels (``--psf pixel``); ``deconvolved``, coherent reconstructions of the counts
deconvolved by Gaussians of several widths (:mod:`cdi_dip.deconvolution`); ``refined``, the best deconvolved one refined
against the measured counts under its width's blur (only with ``deconvolved``); ``polished``, the best candidate
so far with a Gaussian width per axis fitted with it by maximum likelihood (:mod:`cdi_dip.polish`)."""


DECONVOLVED_LABEL = "deconvolved"
"""How the record of ``--psf compare`` names a deconvolved challenger: ``deconvolved 0.88 px``."""


def deconvolved_label(sigma_px: float) -> str:
    """The name of the deconvolved challenger of width ``sigma_px`` in ``method_choice.coherence``."""
    return f"{DECONVOLVED_LABEL} {sigma_px:g} px"


def parse_challengers(text: str) -> tuple[str, ...]:
    """Parse ``psf_challengers``: a comma-separated, non-empty selection of :data:`CHALLENGERS`, in that order.

    Raises
    ------
    InvalidInputError
        For an empty list or an unknown name.
    """
    names = [part.strip().lower() for part in str(text).split(",") if part.strip()]
    unknown = [name for name in names if name not in CHALLENGERS]
    if not names or unknown:
        raise InvalidInputError(f"psf_challengers {text!r}: use any of {', '.join(CHALLENGERS)}, comma-separated "
                                "(e.g. psf_challengers = \"kernel,deconvolved\")")
    if "refined" in names and "deconvolved" not in names:
        raise InvalidInputError(f"psf_challengers {text!r}: refined refines the best deconvolved challenger; "
                                "name deconvolved too (e.g. psf_challengers = \"kernel,deconvolved,refined\")")
    return tuple(name for name in CHALLENGERS if name in names)


__all__ = ["CHALLENGERS", "DECONVOLVED_LABEL", "DEFAULT_START_SIGMA_PX", "MAX_KERNEL_RADIUS_PX", "PsfChoice",
           "deconvolved_label", "for_run", "parse_challengers", "parse_psf"]
