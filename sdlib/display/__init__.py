"""Showing things: image grids and plots (`plot`), animations (`animate`) and the interactive
explorers of notebooks 01, 02, 03 and 05 (`explore_*`).
"""
