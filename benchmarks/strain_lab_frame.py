"""Strain along Q in the detector, lab and crystal frames against a known lab-frame displacement field.

A ball of radius ``--radius-nm`` in the lab frame carries ``u(r) = r^T M r``
along Q (``M`` random symmetric, scaled so the strain reaches ``--strain`` at
the edge) plus a uniform tilt ``--tilt`` (a phase ramp, as a lattice rotation
or an off-centre Bragg peak leaves), sampled at the detector-frame voxel
positions of APS 34-ID-C's geometry (9 keV, 0.5 m, 55 um pixels, 0.005 deg
rocking step, delta 32.174, gamma 12.6346, pixels "x+,y-"). Each frame's
strain map is compared with the analytic strain at its own voxel positions,
over the support and over the inner support (voxels at least one
detector-frame step, the interpolation stencil, inside the edge).

    python benchmarks/strain_lab_frame.py
    python benchmarks/strain_lab_frame.py --shape 128,96,96 --radius-nm 800
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine_description

from cdi_dip.geometry import (q_direction, q_norm_per_m, real_space_basis, scattering_angle_rad,
                              strain_weights_per_m, wavelength_m_from_kev)
from cdi_dip.orthogonal import orthogonal_grid
from cdi_dip.strain import orthogonal_strain_maps, strain_maps
from cdi_dip.types import ScanMeta

META = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                rocking_step_deg=0.005, detector_angles_deg=(32.174, 12.6346), extra={"pixel_orientation": "x+,y-"})


def crystal(shape, radius_m, strain, tilt, seed):
    """(object, support, strain_at, lab positions of the detector voxels (3, M))."""
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    r = real_space_basis(META, shape) @ (index - (np.asarray(shape) // 2)[:, None])
    q_hat = q_direction(META)
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(3, 3))
    m = (m + m.T) / 2
    m *= strain / (2 * np.linalg.norm(q_hat @ m) * radius_m)
    side = np.cross(q_hat, [0.0, 1.0, 0.0])  # a tilt: a gradient of u perpendicular to Q
    u = np.einsum("in,ij,jn->n", r, m, r) + tilt * (side / np.linalg.norm(side)) @ r
    q_norm = q_norm_per_m(META.wavelength_m, scattering_angle_rad(*META.detector_angles_deg))
    support = ((r ** 2).sum(axis=0) <= radius_m ** 2).reshape(shape)
    obj = (support * np.exp(1j * q_norm * u).reshape(shape)).astype(np.complex64)
    return obj, support, (lambda positions: 2 * q_hat @ m @ positions), r


def inner(support, depth):
    """``support`` less ``depth`` layers of face neighbours."""
    for _ in range(depth):
        kept = support.copy()
        for axis in range(3):
            kept &= np.roll(support, 1, axis) & np.roll(support, -1, axis)
        support = kept
    return support


def rms(values):
    return float(np.sqrt(np.mean(values ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="96,64,64", help="detector frame (rocking, rows, columns)")
    parser.add_argument("--radius-nm", type=float, default=600.0)
    parser.add_argument("--strain", type=float, default=1e-3, help="strain at the ball's edge")
    parser.add_argument("--tilt", type=float, default=3e-4, help="uniform tilt (du/dr perpendicular to Q)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    print(machine_description())
    obj, support, strain_at, positions = crystal(shape, args.radius_nm * 1e-9, args.strain, args.tilt, args.seed)
    q_norm = q_norm_per_m(META.wavelength_m, scattering_angle_rad(*META.detector_angles_deg))
    basis = real_space_basis(META, shape)
    step_m = np.linalg.norm(basis, axis=0).max()
    print(f"detector frame {shape}, steps {np.round(np.linalg.norm(basis, axis=0) * 1e9, 1).tolist()} nm, "
          f"ball {args.radius_nm:g} nm, strain up to {args.strain:g}, tilt {args.tilt:g}")
    print(f"{'frame':9} {'grid':>15} {'step nm':>9} {'voxels':>8} {'rms err':>9} {'inner':>7} {'rms err':>9} "
          f"{'rms strain':>10} {'time s':>7}")
    for frame in ("detector", "lab", "crystal"):
        start = time.perf_counter()
        if frame == "detector":
            maps = strain_maps(obj, support, q_norm, strain_weights_per_m(META, shape))
            voxel_m, where = min(np.linalg.norm(basis, axis=0)), positions
            depth = 1
        else:
            grid = orthogonal_grid(basis, support, frame, q_direction(META))
            maps, _ = orthogonal_strain_maps(obj, support, grid, q_norm, q_direction(META))
            voxel_m = grid.voxel_m
            where = grid.lab_positions_m(np.arange(maps.strain.size))
            depth = int(np.ceil(step_m / voxel_m))
        elapsed = time.perf_counter() - start
        truth = strain_at(where).reshape(maps.strain.shape)
        core = inner(maps.support, depth)
        error = maps.strain - truth
        print(f"{frame:9} {str(maps.strain.shape):>15} {voxel_m * 1e9:9.1f} {int(maps.support.sum()):8d} "
              f"{rms(error[maps.support]):9.2e} {int(core.sum()):7d} {rms(error[core]):9.2e} "
              f"{rms(truth[core]):10.2e} {elapsed:7.2f}")


if __name__ == "__main__":
    main()
