"""Input and output: detector files in (CXI, HDF5, TIFF, NPY/NPZ), results out.

Readers never modify their input; writers write atomically (temporary name,
then rename).
"""

from .cxi import write_measurement_cxi
from .readers import read_array, read_measurement, read_object, scan_name
from .writers import atomic_write, jsonable, write_json, write_result_cxi, write_tiffs

__all__ = [
    "atomic_write",
    "jsonable",
    "read_array",
    "read_measurement",
    "read_object",
    "scan_name",
    "write_json",
    "write_measurement_cxi",
    "write_result_cxi",
    "write_tiffs",
]
