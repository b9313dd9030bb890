"""The learned initialiser (``--init learned[:MODEL.pt]``) and the network's object alone (``--method net``).

:class:`LearnedInitialiser` is an :class:`~cdi_dip.solvers.base.Initialiser`:
it runs the model once per problem (:meth:`LearnedInitialiser.predict`: the
frame moved onto the model's, :mod:`.resample`; the object moved back and
scaled to the counts), gives that object to the first run and the object
with a random complex perturbation of :data:`PERTURBATION` of its RMS inside
the support to every later run (so that several starts still explore), and
offers the projection solvers its support
(:meth:`LearnedInitialiser.initial_support`) in place of the
autocorrelation's. Only the fitted pixels are shown to the network: the
held-out (free) pixels stay a fair test.

``learned`` alone takes the model shipped for the data's dimensionality
(:data:`DEFAULT_MODELS`, in ``cdi_dip/learned/models/``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config.init_choice import parse_init
from ..errors import InvalidInputError
from ..support import dilate_mask, gaussian_blur
from ..types import SolverOutput
from .files import ModelFile, load_model
from .losses import passive_loss
from .network import autocorrelation_features, scale_to_counts
from .resample import check_frame, object_to_frame, to_model_frame

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).with_name("models")
"""Where the shipped models live."""

DEFAULT_MODELS = {2: "default_2d.pt", 3: "default_3d.pt"}
"""The shipped model file per dimensionality (``benchmarks/train_default_models.py`` makes them)."""

SUPPORT_THRESHOLD = 0.1
"""Relative amplitude (of the object blurred by :data:`SUPPORT_BLUR_PX`) above which a voxel is in the support."""

SUPPORT_BLUR_PX = 1.0
SUPPORT_DILATION_PX = 2
"""The learned support is grown by this many pixels: the network's edges are soft, HIO's shrinkwrap tightens."""

PERTURBATION = 0.2
"""Relative RMS of the complex noise added inside the support for every run after the first."""

def perturbed(obj: torch.Tensor, support: torch.Tensor, fraction: float, *, rng: torch.Generator) -> torch.Tensor:
    """``obj`` plus complex Gaussian noise of ``fraction`` of its RMS inside ``support``, zero outside.

    Several runs started from one object still explore: the first takes the
    object itself, every later one a perturbed copy (this module's network,
    :mod:`cdi_dip.previous_result`'s previous result).

    Parameters
    ----------
    obj : torch.Tensor, complex, frame shape, centred
    support : torch.Tensor, bool, frame shape
    fraction : float
        RMS of the noise relative to the object's RMS over ``support``; 0: the
        object itself, and nothing is drawn from ``rng``.
    rng : torch.Generator

    Returns
    -------
    torch.Tensor, complex64, frame shape, centred
    """
    zero = torch.zeros((), dtype=torch.complex64, device=obj.device)
    if fraction <= 0:  # no draw: ``rng`` goes on as if this were not called
        return torch.where(support, obj.to(torch.complex64), zero)
    rms = obj[support].abs().square().mean().sqrt() if bool(support.any()) else obj.abs().max()
    noise = torch.randn(obj.shape, generator=rng, device=rng.device, dtype=torch.complex64).to(obj.device)
    return torch.where(support, obj.to(torch.complex64) + fraction * rms * noise, zero)


def default_model_path(dim: int) -> Path:
    """The shipped model for ``dim``-D data; InvalidInputError when none is shipped."""
    path = MODELS_DIR / DEFAULT_MODELS.get(int(dim), f"default_{dim}d.pt")
    if not path.is_file():
        raise InvalidInputError(f"no learned model is shipped for {dim}D data: train one with "
                                f"cdi-dip train MODEL.pt --dim {dim} and give --init learned:MODEL.pt")
    return path


@dataclass
class _Prediction:
    obj: torch.Tensor
    support: torch.Tensor
    calls: int = 0


class LearnedInitialiser:
    """Starting objects from a trained network (module docstring).

    Parameters
    ----------
    model : ModelFile
    """

    def __init__(self, model: ModelFile):
        self.model = model
        self._nets: dict[str, torch.nn.Module] = {}
        self._predictions: dict[int, _Prediction] = {}

    @property
    def name(self) -> str:
        return str(self.model.path) if self.model.path is not None else "in-memory model"

    def check(self, frame: tuple[int, ...]) -> None:
        """InvalidInputError at once when the model cannot take this frame (:func:`~.resample.check_frame`)."""
        arch = self.model.architecture
        check_frame(frame, arch.size, arch.dim, where=f"the {'x'.join(map(str, frame))} frame")

    def _net(self, device: torch.device) -> torch.nn.Module:
        key = str(device)
        if key not in self._nets:
            self._nets[key] = self.model.network(device)
        return self._nets[key]

    @torch.no_grad()
    def _predict(self, counts: torch.Tensor, fit: torch.Tensor) -> _Prediction:
        frame = tuple(counts.shape)
        self.check(frame)
        size = self.model.architecture.size
        counts_m, fit_m = to_model_frame(counts, fit, size)
        obj_m = self._net(counts.device)(autocorrelation_features(counts_m[None], fit_m[None]))[0]
        obj = scale_to_counts(object_to_frame(obj_m, frame)[None], counts[None], fit[None])[0]
        amplitude = gaussian_blur(obj.abs(), SUPPORT_BLUR_PX)
        support = dilate_mask(amplitude > SUPPORT_THRESHOLD * amplitude.max(), SUPPORT_DILATION_PX)
        return _Prediction(obj=obj, support=support)

    def predict(self, problem: Any) -> _Prediction:
        """The network's object (frame shape, centred, complex64, on the counts' scale) and support, cached."""
        key = id(problem.counts)
        if key not in self._predictions:
            self._predictions = {key: self._predict(problem.counts, problem.fit)}
        return self._predictions[key]

    def initial_support(self, problem: Any) -> torch.Tensor:
        """The support of the network's object (bool, frame shape, centred): thresholded and dilated."""
        return self.predict(problem).support

    def __call__(self, problem: Any, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        """The network's object inside ``support``; perturbed for every call after the first on a problem."""
        prediction = self.predict(problem)
        prediction.calls += 1
        return perturbed(prediction.obj, support, PERTURBATION if prediction.calls > 1 else 0.0, rng=rng)


def learned_initialiser(path: Path | None, dim: int) -> LearnedInitialiser:
    """The initialiser of a model file (None: the shipped model for ``dim``-D data), checked."""
    model = load_model(path if path is not None else default_model_path(dim))
    if model.kind != "phasenet":
        raise InvalidInputError(f"{model.path} holds {model.kind} (for --dip-weights), not a learned "
                                "initialiser: give a file written by cdi-dip train")
    if model.architecture.dim != dim:
        raise InvalidInputError(f"{model.path} is a {model.architecture.dim}D model but the data is {dim}D: "
                                f"give a {dim}D model")
    return LearnedInitialiser(model)


@dataclass(frozen=True)
class NetRun:
    """What ``--method net`` reads of the configuration: the model to run."""

    init: str

    @classmethod
    def from_config(cls, cfg: Any) -> NetRun:
        return cls(init=cfg.init)


def solve_net(problem: Any, options: NetRun, *, init: Any, rng: torch.Generator,
              on_iter: Any = None) -> SolverOutput:
    """``--method net``: the network's object alone, no iteration.

    Parameters
    ----------
    problem : Problem
    options : NetRun
        ``init`` names the model when ``init`` is not already a :class:`LearnedInitialiser`.
    init : Initialiser
    rng : torch.Generator
        Unused (the network is deterministic).
    on_iter : callable, optional
        Called once with ``iteration`` 0 and the passive loss.

    Returns
    -------
    SolverOutput
        Iterations 0; ``extra`` names the model and its training frame.
    """
    learned = init if isinstance(init, LearnedInitialiser) else \
        learned_initialiser(parse_init(options.init)[1], problem.physics.ndim)
    prediction = learned.predict(problem)
    loss = float(passive_loss(prediction.obj[None], problem.counts[None], problem.fit[None]))
    if on_iter is not None:
        on_iter({"iteration": 0, "total": 0, "loss": loss})
    arch = learned.model.architecture
    return SolverOutput(obj=prediction.obj.cpu().numpy(), support=prediction.support.cpu().numpy(),
                        history=[{"iteration": 0.0, "loss": loss}], iterations=0,
                        extra={"model": learned.name, "model_frame": list(arch.frame),
                               "resampled": tuple(problem.physics.shape) != arch.frame,
                               "passive_loss": loss})


__all__ = ["DEFAULT_MODELS", "LearnedInitialiser", "NetRun", "default_model_path", "learned_initialiser",
           "perturbed", "solve_net"]
