"""Build the Cython extensions: every ext/<name>.pyx becomes pipeline._ext.<name>.

Build modes come from the environment (release by default):
  PIPELINE_ANNOTATE=1   also write ext/<name>.html (cython -a) for every module
  PIPELINE_NATIVE=1     add -march=native (only on explicit opt-in: the binary is then not portable)
  PIPELINE_DEBUG=1      -O0 -g, bounds checks and line tracing on
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("PIPELINE_DEBUG") == "1"
NATIVE = os.environ.get("PIPELINE_NATIVE") == "1"
ANNOTATE = os.environ.get("PIPELINE_ANNOTATE") == "1"

# Per-module link libraries (OpenSSL's libcrypto for the signing kernel).
LIBRARIES = {"sign": ["crypto"], "okx_sign": ["crypto"]}

cflags = ["-O0", "-g"] if DEBUG else ["-O3"]
if NATIVE:
    cflags.append("-march=native")
cflags += ["-Wno-unused-function", "-Wno-unreachable-code"]


def link_pxds():
    """Cython finds a module's own .pxd (and cimports of pipeline._ext.*) by package path, so each
    ext/<name>.pxd is linked as pipeline/_ext/<name>.pxd. The links are committed; this recreates
    any that are missing (a new module)."""
    for pxd in glob.glob(os.path.join("ext", "*.pxd")):
        link = os.path.join("pipeline", "_ext", os.path.basename(pxd))
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", pxd), link)


def extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("ext", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(
            Extension(
                f"pipeline._ext.{name}",
                [pyx],
                include_dirs=[np.get_include(), "ext"],
                libraries=LIBRARIES.get(name, []),
                extra_compile_args=cflags,
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


directives = {
    "language_level": 3,
    "embedsignature": True,
    # Bounds checks are turned off per function with decorators, never globally.
    "boundscheck": True,
    "wraparound": True,
    "cdivision": True,
    "linetrace": DEBUG,
}

link_pxds()
setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=directives,
        annotate=ANNOTATE,
        include_path=["."],
        nthreads=0,
    ),
)
