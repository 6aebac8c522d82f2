"""Measuring: picture metrics (`metrics`: PSNR, error maps, edges) and speed (`speed`: seconds and FLOPs
per part, caching and sampler tables, predicted GPU times). Taught in notebooks/01 and 08.
"""
