"""When a result is challenged, and by how much a challenger must win to replace it.

Every challenger of a reconstruction (the partial-coherence models of ``--psf
compare``, the frame margin, more starts, the likelihood polish of a poor
projection fit) obeys the same two rules, kept here so that the modules that
run them share one source: a result is challenged where its free Poisson
deviance per pixel is poor, and a challenger replaces it only where it fits
the held-out pixels significantly better (:func:`cdi_dip.metrics.challenge_margin`).
"""

from __future__ import annotations

CHALLENGE_FREE_DEVIANCE = 2.0
"""Above this free Poisson deviance per pixel a result is challenged (under ``--psf compare`` even without a sign
of blur; by the frame margin; by more starts), and a projection method's result polished by likelihood
(:mod:`cdi_dip.poor_fit_polish`, kept only where the polish brings it to this or below). It is the deviance
itself, not its ratio to what the counts allow (:func:`cdi_dip.metrics.deviance_excess`, which the fit warning
uses): the challengers were measured with this
trigger, and on the ratio the real 34-ID-C scan (1.39 per pixel where its counts allow 0.63) would set every one
of them off, at several times its time, while on the low-flux tuning patterns whose ratio alone is poor more
starts rescued none (docs/benchmarks.md, nineteenth session)."""

CHALLENGE_DIP_EXCESS = 2.0
"""A double DIP result is also challenged by more of its runs where its free Poisson deviance is above this many
times what a model as good as the counts allow would score (:func:`cdi_dip.metrics.deviance_excess`, the fit
warning's ratio): at a few photons per pixel a missed basin scores well under :data:`CHALLENGE_FREE_DEVIANCE`
(a strained tuning crystal at 1e3 photons: 1.79 per pixel, where its truth scores 0.73 and the counts allow
0.50). The double DIP fits the Poisson likelihood, so its free deviance keeps that meaning at any flux; a
projection method's does not (its modulus step fits the noise of faint pixels: the same crystal refined by ER
from its truth scored 1.51), and its challengers keep the deviance's own trigger. On the corpus's 52 low-flux 2D
tuning patterns it set off 9 challenges, 2 results better and none worse (docs/benchmarks.md, twenty-seventh
session)."""

CHALLENGE_SIGNIFICANCE = 2.0
"""A challenger replaces the incumbent only when it fits the held-out pixels better by this normal score
(:func:`cdi_dip.reconstruction.free_deviance_margin`: the paired mean's ``z``, or where the challenger's total
deviance is lower the signed ranks' where larger); 0: the lowest deviance wins."""
