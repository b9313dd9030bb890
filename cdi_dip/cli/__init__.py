"""The ``cdi-dip`` command line: parse, build the configuration, call the library, render.

- :mod:`.app`: the Typer app and :func:`main` (the console script ``cdi_dip.cli:main``);
- :mod:`.common`: exit codes, error lines, logging, SIGTERM, :func:`~.common.build_config`, JSON;
- :mod:`.options`: the shared options and the table from option to configuration field;
- :mod:`.render`: progress bars and tables;
- one module per command: :mod:`.reconstruct`, :mod:`.batch`, :mod:`.simulate`, :mod:`.inspect`,
  :mod:`.compare`, :mod:`.report`, :mod:`.version`, :mod:`.config`.

Exit codes: 0 success; 1 a reconstruction failed at run time (batch: any scan
failed); 2 invalid input or usage (one line on stderr, no traceback);
130 interrupted (the best result so far is written when there is one).
"""

from .app import app, main

__all__ = ["app", "main"]
