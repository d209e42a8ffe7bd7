"""Type stub of the compiled module fastjac._kernels.elementwise (hand-written).

The ``*_fast`` entry points check and run the common calls in one C call and return None
when the call needs the general path of fastjac/ops.py; the others take already-validated
C-contiguous arrays of one float dtype (float32 or float64).
"""

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.floating[Any]]
Scalar = Union[float, int, np.floating[Any]]

UNARY_CODES: Dict[str, int]
BINARY_CODES: Dict[str, int]
TILE_SIZE: int
BLOCK_SIZE: int

def idle_cpus(n_cores: int) -> int: ...
def openmp_enabled() -> bool: ...
def set_math_mode(mode: int) -> None: ...
def get_math_mode() -> int: ...
def simd_info() -> Dict[str, Union[str, bool]]: ...
def vexp(x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
def unary(
    codes: bytes, x: Arr, t: Optional[Arr], y_out: Optional[Arr], d_out: Optional[Arr],
    n_threads: int = ...,
) -> None: ...
def unary_fast(
    codes: bytes, x: object, t: object, value: bool, out: object, n_threads: object,
    work_per_element: int, threshold: int, n_cores: int,
) -> Optional[Arr]: ...
def binary(
    op: int, fcodes: bytes, gcodes: bytes, n: int, w: Arr, x: Arr, w_scalar: bool,
    x_scalar: bool, dw: Optional[Arr], dx: Optional[Arr], gy: Optional[Arr],
    y_out: Optional[Arr], jvp_out: Optional[Arr], gw_out: Optional[Arr],
    gx_out: Optional[Arr], want_scalar_grads: bool = ..., n_threads: int = ...,
) -> Tuple[float, float]: ...
def binary_fast(
    op: int, fcodes: bytes, gcodes: bytes, w: object, x: object, gy: object, value: bool,
    out: object, n_threads: object, work_per_element: int, threshold: int, n_cores: int,
) -> Union[None, Arr, Tuple[Union[Arr, np.floating[Any]], Union[Arr, np.floating[Any]]]]: ...
def reduce(a: Arr, b: Optional[Arr], n_threads: int = ...) -> float: ...
def reduce_fast(
    a: object, b: object, n_threads: object, work_per_element: int, threshold: int,
    n_cores: int,
) -> Optional[np.floating[Any]]: ...
