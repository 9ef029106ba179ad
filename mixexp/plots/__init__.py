"""Figures: learning curves, reliability diagrams, report bar charts and the papers' figures.

Each figure function takes plain data (histories, logits, models) and an output folder, and writes
``<name>.png``, ``<name>.pdf`` and ``<name>.csv`` (exactly the plotted numbers) there; ``mixexp-plot``
(:mod:`mixexp.plots.cli`) finds the data in run folders. Only :mod:`mixexp.plots.runs` knows how a
finished run is turned back into a model.
"""
