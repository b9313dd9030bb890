"""cdi-dip: coherent diffraction imaging reconstruction (2D CDI and 3D BCDI).

Double deep image prior and classic projection methods (ER, HIO, RAAR with
shrinkwrap) on CPU or GPU, from detector files to aligned, documented results.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
