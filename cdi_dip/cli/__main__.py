"""``python -m cdi_dip.cli``: the same as the ``cdi-dip`` console script."""

from . import main

if __name__ == "__main__":  # pragma: no cover
    main()
