"""Compiled Cython kernels (built from ext/*.pyx by setup.py). Import them through
`pipeline._native.load(name)`, which explains how to build them when they are missing."""
