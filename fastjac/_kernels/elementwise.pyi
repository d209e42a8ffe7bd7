"""Type stub for the compiled module ``fastjac._kernels.elementwise`` (hand-written).

The kernels take C-contiguous float32/float64 arrays that ``fastjac/_validate.py`` has
already checked; their public Python API is ``fastjac.ops``. Keep this file in step with
``elementwise.pyx``: ``tests/test_stubs.py`` compares the two.
"""

from typing import Any, Final, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_FloatArray = npt.NDArray[np.floating[Any]]

UNARY_CODES: Final[dict[str, int]]
BINARY_CODES: Final[dict[str, int]]
TILE_SIZE: Final[int]
BLOCK_SIZE: Final[int]

def openmp_enabled() -> bool: ...
def unary(
    codes: bytes,
    x: _FloatArray,
    t: Optional[_FloatArray],
    y_out: Optional[_FloatArray],
    d_out: Optional[_FloatArray],
    n_threads: int = 1,
) -> None: ...
def unary_fast(
    codes: bytes,
    x: object,
    t: object,
    value: bool,
    work_per_element: int,
    threshold: int,
    n_cores: int,
) -> Optional[_FloatArray]: ...
def binary(
    op: int,
    fcodes: bytes,
    gcodes: bytes,
    n: int,
    w: _FloatArray,
    x: _FloatArray,
    w_scalar: bool,
    x_scalar: bool,
    dw: Optional[_FloatArray],
    dx: Optional[_FloatArray],
    gy: Optional[_FloatArray],
    y_out: Optional[_FloatArray],
    jvp_out: Optional[_FloatArray],
    gw_out: Optional[_FloatArray],
    gx_out: Optional[_FloatArray],
    want_scalar_grads: bool = False,
    n_threads: int = 1,
) -> Tuple[float, float]: ...
def binary_fast(
    op: int,
    fcodes: bytes,
    gcodes: bytes,
    w: object,
    x: object,
    gy: object,
    value: bool,
    work_per_element: int,
    threshold: int,
    n_cores: int,
) -> Union[_FloatArray, Tuple[_FloatArray, _FloatArray], None]: ...
def reduce(a: _FloatArray, b: Optional[_FloatArray], n_threads: int = 1) -> float: ...
