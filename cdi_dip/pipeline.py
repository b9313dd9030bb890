"""One scan from file to aligned, written result: read -> prepare -> reconstruct -> write.

:func:`load_scan` reads and prepares (:mod:`cdi_dip.io.readers`,
:mod:`cdi_dip.prepare`), :func:`cdi_dip.reconstruction.reconstruct` makes
the aligned result, and :mod:`cdi_dip.outputs` keeps the user's files safe
and writes the result atomically. The library never prints: progress goes
to the ``on_iter`` callback and to ``logging``.

Ctrl-C and SIGTERM keep the best result so far once an iterate exists
(:mod:`cdi_dip.reconstruction`); before that, ``KeyboardInterrupt`` is
raised and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig
from .config.init_choice import parse_init
from .device import resolve_device
from .errors import ReconstructionError
from .inspection import inspect_input
from .io.calibration import Calibration, resolve_calibration
from .io.names import safe_scan_name
from .io.readers import scan_name
from .outputs import check_can_create, check_output_target, claim_result_folder, result_folder
from .reconstruction import initialiser_for, reconstruct
from .solvers import IterCallback
from .strain_result import check_strain_choice
from .types import Measurement


def load_scan(source: str, cfg: RunConfig, *, mask_specs: Sequence[str] = (),
              calibration: Calibration | None = None) -> Measurement:
    """Read, condition (corrections, defects, binning) and frame one scan, as ``cdi-dip inspect`` shows it.

    ``calibration``: the dark and flat already resolved for this scan (default: resolved here).

    Raises
    ------
    InvalidInputError
        On bad input: nothing has been written.
    """
    return inspect_input(source, cfg, mask_specs=mask_specs, calibration=calibration).framed


def scan_inputs(source: str, cfg: RunConfig, mask_specs: Sequence[str] = (),
                calibration: Calibration | None = None) -> list[str]:
    """Every input a scan reads: its data, mask files, dark and flat, given or found, and the model or previous
    result ``--init`` names (none may be written over)."""
    if calibration is None:
        calibration = resolve_calibration(source, cfg.detector.dark, cfg.detector.flat)
    _, start_file = parse_init(cfg.init)
    return [source, *mask_specs, *(spec for spec in (calibration.dark, calibration.flat) if spec is not None),
            *([str(start_file)] if start_file is not None else [])]


def reconstruct_scan(
    source: str,
    cfg: RunConfig,
    out_dir: Path,
    *,
    mask_specs: Sequence[str] = (),
    command_line: str = "",
    on_iter: IterCallback | None = None,
    name: str | None = None,
    strain: str = "auto",
) -> dict[str, Any]:
    """Read, reconstruct and write one scan into ``OUT/<scan-name>/`` (or ``OUT/<name>/``); return its summary.

    Everything that can be checked is checked before anything is written:
    the result folder (not an input's, not another program's), that ``OUT``
    can be created, the device, and the input itself. The result folder is
    then held for this run alone (:func:`cdi_dip.outputs.claim_result_folder`).

    Raises
    ------
    InvalidInputError
        Bad input or output folder (nothing is written).
    ReconstructionError
        The reconstruction failed at run time.
    KeyboardInterrupt
        Stopped before any iterate existed (nothing is written).

    Notes
    -----
    ``name`` (``--name``) names the result folder instead of the scan's name,
    made safe as one folder name (:func:`cdi_dip.io.names.safe_scan_name`);
    the files inside keep the scan's name.

    ``strain`` (``--strain``) is the frame of the strain files of a 3D Bragg
    result: ``auto`` (lab when the geometry allows, detector frame without
    the rocking step, none without the geometry), ``lab``, ``crystal``,
    ``detector`` or ``off`` (:func:`cdi_dip.strain_result.strain_frame`). A
    failed strain is a warning and a ``strain`` record in the summary: the
    reconstruction is written all the same.
    """
    check_strain_choice(strain)
    out_dir = Path(out_dir)
    calibration = resolve_calibration(source, cfg.detector.dark, cfg.detector.flat)  # once: it may warn
    inputs = scan_inputs(source, cfg, mask_specs, calibration)
    folder_name = safe_scan_name(name) if name is not None else None
    check_output_target(result_folder(out_dir, folder_name or scan_name(source)), inputs)
    check_can_create(out_dir)
    resolve_device(cfg.device)
    measurement = load_scan(source, cfg, mask_specs=mask_specs, calibration=calibration)
    init = initialiser_for(cfg, measurement)  # a bad model file is refused before anything is written
    with claim_result_folder(out_dir, folder_name or measurement.name, inputs) as folder:
        try:
            result = reconstruct(measurement, cfg, init=init, on_iter=on_iter)
        except torch.cuda.OutOfMemoryError:
            raise ReconstructionError("out of GPU memory: use a smaller --max-size or --device cpu") from None
        return folder.write(result, command_line=command_line, strain=strain)


__all__ = ["load_scan", "reconstruct", "reconstruct_scan", "scan_inputs"]
