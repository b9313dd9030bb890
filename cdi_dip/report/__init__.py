"""Reports of a result: :mod:`.png` (the figures; the only module that imports matplotlib,
loaded when a report is written) and :mod:`.html` (the page around them)."""
