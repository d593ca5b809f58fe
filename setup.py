"""Extension list only; metadata lives in pyproject.toml.

Build switches (environment variables):
  SPARSEPROP_DEBUG=1    bounds checks and assertions back on, -O0 -g
  SPARSEPROP_NATIVE=1   add -march=native (off by default: wheels must run anywhere)
  SPARSEPROP_HEAP_ARITY=d  arity of the indexed heap (default 4; used to measure 2 vs 4)
  SPARSEPROP_DEFINE=A,B=2  extra C macros, e.g. SPARSEPROP_NO_HUGEPAGE, SPARSEPROP_PF_SLOT=24
                           (for benchmarks/ab_compare.py)
"""
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SPARSEPROP_DEBUG", "0") == "1"
NATIVE = os.environ.get("SPARSEPROP_NATIVE", "0") == "1"
ARITY = int(os.environ.get("SPARSEPROP_HEAP_ARITY", "4"))
EXTRA_MACROS = [m for m in os.environ.get("SPARSEPROP_DEFINE", "").split(",") if m]  # for A/B builds

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
if NATIVE:
    compile_args.append("-march=native")
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("SPARSEPROP_HEAP_ARITY", str(ARITY))]
if not DEBUG:
    macros.append(("CYTHON_WITHOUT_ASSERTIONS", "1"))
macros += [tuple(m.split("=", 1)) if "=" in m else (m, "1") for m in EXTRA_MACROS]


def ext(name):
    return Extension(
        f"sparseprop._core.{name}",
        [f"sparseprop/_core/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=macros,
        extra_compile_args=compile_args,
        libraries=["m"],
    )


setup(
    ext_modules=cythonize(
        [ext(n) for n in ("_heap", "_tree", "_rng", "_chebyshev", "_models", "_engine", "_backward")],
        compiler_directives=directives,
    ),
)
