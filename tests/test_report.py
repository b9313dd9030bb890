"""Reports: report.png (2D, 3D, with an ensemble and a PRTF), report.html, and rebuilding both from a result CXI."""

from __future__ import annotations

import dataclasses
import struct
from html.parser import HTMLParser

import h5py
import numpy as np
import pytest

from cdi_dip.ensemble import align_object, compute_prtf, ensemble_statistics
from cdi_dip.errors import InvalidInputError
from cdi_dip.io.result_cxi import ENSEMBLE_GROUP, PRTF_GROUP, ensemble_datasets, prtf_datasets, read_result_cxi
from cdi_dip.io.writers import write_result_cxi
from cdi_dip.report.png import write_report
from cdi_dip.report.html import regenerate_report, write_report_html
from cdi_dip.simulate import expected_intensity, faceted_crystal
from cdi_dip.types import Measurement, Result, ScanMeta


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR width, height


def _framed(obj, frame):
    out = np.zeros(frame, dtype=np.complex64)
    out[tuple(slice(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(frame, obj.shape))] = obj
    return out


def _result(shape, seed=0):
    """A small Result as the pipeline makes it, without running a solver."""
    crystal = faceted_crystal(tuple(n // 2 for n in shape), rng=np.random.default_rng(seed), size_fraction=0.5)
    obj = _framed(crystal * np.float32(np.sqrt(50.0)), shape)  # the object's scale is that of sqrt(counts)
    counts = np.random.default_rng(seed).poisson(expected_intensity(obj)).astype(np.float32)
    valid = np.ones(shape, dtype=bool)
    valid[tuple(slice(n // 2 - 1, n // 2 + 1) for n in shape)] = False
    aligned, support, info = align_object(obj, np.abs(obj) > 0.1)
    measurement = Measurement(intensity=counts, valid=valid, name="tiny <scan> & co", source="tiny.cxi",
                              meta=ScanMeta(wavelength_m=1.4e-10, distance_m=1.0, pixel_size_m=(55e-6, 55e-6)),
                              roi=[(0, n) for n in shape])
    history = [{"iteration": float(i), "loss": 10.0 / (i + 1), "free_loss": 11.0 / (i + 1)} for i in range(0, 50, 10)]
    return Result(obj=aligned.astype(np.complex64), support=support, measurement=measurement, method="hio",
                  metrics={"r_factor": 0.1234, "llk_poisson": 1.05, "free_llk_poisson": 1.1, "chi2": 0.98,
                           "support_size": int(support.sum()), "iterations": 50, "seconds_per_iteration": 0.002},
                  history=history, iterations=50, wall_s=0.1, seed=3, align=info,
                  config={"method": "hio", "note": "<b>not bold</b>"},
                  model_intensity=expected_intensity(obj).astype(np.float32),
                  free=np.zeros(shape, dtype=bool))


def _ensemble_and_prtf(result, members=3):
    rng = np.random.default_rng(1)
    noisy = [result.obj * np.exp(1j * rng.normal(0, 0.2, result.obj.shape)) for _ in range(members - 1)]
    objects = [result.obj, *noisy]
    ensemble = ensemble_statistics(objects, [result.support] * members, pairwise=False)
    prtf = compute_prtf(ensemble.objects, result.measurement.intensity, result.measurement.valid,
                        ramp_rad_per_px=result.align.ramp_rad_per_px, meta=result.measurement.meta)
    return ensemble, prtf


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    parser = _Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser, " ".join(parser.text)


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_report_png_grows_with_ensemble_and_prtf(tmp_path, shape):
    result = _result(shape)
    plain = write_report(result, tmp_path)[0]  # the signature the pipeline uses
    width, height = _png_size(plain)
    ensemble, prtf = _ensemble_and_prtf(result)
    richer = tmp_path / "richer"
    richer.mkdir()
    path = write_report(dataclasses.replace(result, ensemble=ensemble, prtf=prtf), richer)[0]
    assert path.name == "report.png"
    rich_width, rich_height = _png_size(path)
    assert rich_width > width and rich_height == height  # two more columns (amplitude and phase std)
    if len(shape) == 3:
        flat = tmp_path / "flat"
        flat.mkdir()
        assert height > _png_size(write_report(_result((32, 32)), flat)[0])[1]  # three planes, not one
    assert not list(tmp_path.glob(".*tmp"))


def test_report_refuses_an_ensemble_of_another_frame(tmp_path):
    result = _result((32, 32))
    ensemble, _ = _ensemble_and_prtf(_result((16, 16)))
    with pytest.raises(ValueError, match="match the ensemble"):
        write_report(dataclasses.replace(result, ensemble=ensemble), tmp_path)


def test_html_parses_holds_the_metrics_and_escapes_strings(tmp_path):
    result = _result((32, 32))
    write_report(result, tmp_path)
    summary = {"input": "scan<1>.cxi", "output": str(tmp_path / "scan.cxi"), "method": "dip", "status": "ok",
               "interrupted": True, "iterations": 50, "seconds_per_iteration": 0.0125, "wall_s": 1.5,
               "metrics": {"r_factor": 0.1234, "chi2": 1.02, "llk_poisson": 0.97, "free_llk_poisson": 1.01,
                           "support_size": 321},
               "alignment": {"shift_px": [0.5, -1.25], "ramp_rad_per_px": [0.01, 0.0], "phase_offset_rad": 0.3},
               "resolution": {"resolution_px": 2.5, "resolution_nm": 31.4, "criterion": "PRTF < 0.368"},
               "config": {"note": "<script>alert(1)</script>"}}
    path = write_report_html(tmp_path / "report.html", summary)
    parser, text = _parse(path)
    assert "script" not in parser.tags  # every string escaped
    assert "<script>alert(1)</script>" in text and "scan<1>.cxi" in text
    for figure in ("0.1234", "1.02", "0.97", "1.01", "321", "0.0125", "2.5", "31.4", "-1.25"):
        assert figure in text, figure
    assert "INTERRUPTED" in text
    assert len(parser.images) == 1 and parser.images[0].startswith("data:image/png;base64,")  # stands alone
    assert "style" in parser.tags


def test_html_says_which_method_and_which_coherence_model_were_kept_and_why(tmp_path):
    write_report(_result((32, 32)), tmp_path)
    summary = {"method": "hio", "metrics": {}, "method_choice": {
        "compared": True, "chosen": "hio", "free_llk_poisson": {"dip": 3.5, "hio": 1.25},
        "coherence": {"compared": False, "chosen": "coherent", "reason": "coherent kept without a challenger"}}}
    _, text = _parse(write_report_html(tmp_path / "report.html", summary))
    assert "Method: hio kept: free Poisson LLK dip 3.5, hio 1.25." in text
    assert "Partial coherence: coherent kept without a challenger." in text


def test_regenerate_from_a_result_cxi(tmp_path):
    result = _result((32, 32))
    cxi = tmp_path / "scan.cxi"
    write_result_cxi(cxi, result, command_line="cdi-dip reconstruct tiny.cxi", version="0.1.0")
    stored = read_result_cxi(cxi)
    assert np.array_equal(stored.result.obj, result.obj) and np.array_equal(stored.result.support, result.support)
    assert np.array_equal(stored.result.measurement.valid, result.measurement.valid)
    assert [h["loss"] for h in stored.result.history] == [h["loss"] for h in result.history]
    assert stored.result.metrics["r_factor"] == pytest.approx(0.1234) and stored.ensemble is None
    assert stored.result.align.ramp_rad_per_px == pytest.approx(result.align.ramp_rad_per_px)

    out = tmp_path / "again"
    png, page = regenerate_report(cxi, out)
    assert png == out / "report.png" and page == out / "report.html"
    _png_size(png)
    parser, text = _parse(page)
    assert "0.1234" in text and "hio" in text and "cdi-dip reconstruct tiny.cxi" in text
    assert "reconstruct tiny.cxi" in text

    # with an ensemble and a PRTF stored where the reader looks for them
    ensemble, prtf = _ensemble_and_prtf(result)
    with h5py.File(cxi, "a") as handle:
        for group, data in ((ENSEMBLE_GROUP, ensemble_datasets(ensemble)), (PRTF_GROUP, prtf_datasets(prtf))):
            target = handle.require_group(group)
            for name, array in data.items():
                target.create_dataset(name, data=array)
    png, page = regenerate_report(cxi)
    assert png.parent == tmp_path
    assert _png_size(png)[0] > _png_size(out / "report.png")[0]
    _, text = _parse(page)
    assert "Ensemble of runs" in text and "Resolution (PRTF)" in text


def test_regenerate_refuses_a_file_that_is_not_a_result(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        regenerate_report(tmp_path / "missing.cxi")
    not_hdf5 = tmp_path / "x.cxi"
    not_hdf5.write_text("hello")
    with pytest.raises(InvalidInputError, match="not an HDF5"):
        regenerate_report(not_hdf5)
    with h5py.File(tmp_path / "input.cxi", "w") as handle:
        handle.create_dataset("/entry_1/instrument_1/detector_1/data", data=np.ones((8, 8)))
    with pytest.raises(InvalidInputError, match="no 2D/3D object"):
        regenerate_report(tmp_path / "input.cxi")


def test_pearson_residual_has_unit_variance_where_the_model_is_right_and_nan_where_unmeasured():
    from cdi_dip.report.png import pearson_residual

    rng = np.random.default_rng(0)
    model = rng.uniform(5, 500, size=(64, 64))
    measured = rng.poisson(model).astype(float)
    measured[0, :4] = np.nan
    residual = pearson_residual(measured, model)
    assert np.isnan(residual[0, :4]).all()
    assert abs(float(np.nanstd(residual)) - 1.0) < 0.05
    assert abs(float(np.nanmean(pearson_residual(measured, 0.5 * model)))) > 3  # a model off by 2x shows


@pytest.mark.parametrize("limit, expected", [(0.3, 0.2), (7.0, 5.0), (10.0, 10.0), (260.0, 200.0), (999.0, 500.0)])
def test_scale_bar_lengths_are_round(limit, expected):
    from cdi_dip.report.png import nice_length

    assert nice_length(limit) == pytest.approx(expected)


@pytest.mark.parametrize("offset, scale", [(0.0, "log"), (-20.0, "linear")])
def test_convergence_history_is_drawn_even_where_the_loss_is_negative(offset, scale):
    """The double DIP's Poisson loss ``m - n log m`` is negative where counts are high: its history is drawn on
    a linear axis rather than dropped from a log one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cdi_dip.report.png import _plot_history

    result = _result((16, 16))
    result.history = [{**h, "loss": h["loss"] + offset, "free_loss": h["free_loss"] + offset} for h in result.history]
    fig, ax = plt.subplots()
    try:
        _plot_history(result, ax)
        assert [len(line.get_xdata()) for line in ax.get_lines()] == [len(result.history)] * 2
        assert ax.get_yscale() == scale
    finally:
        plt.close(fig)


def test_the_title_says_what_the_counts_allow_beside_a_faint_patterns_free_deviance():
    from cdi_dip.report.png import _title

    result = _result((16, 16))
    assert "free LLK = 1.100," in _title(result)  # bright: the deviance alone
    result.metrics = {**result.metrics, "free_llk_poisson": 0.8724, "free_llk_poisson_expected": 0.325}
    assert "free LLK = 0.872 (the counts allow 0.325)" in _title(result)
