"""Type stub of the compiled module fastjac._kernels.elementwise (hand-written).

The ``*_fast`` entry points check and run the common calls in one C call and return None
when the call needs the general path of fastjac/ops.py; the others take already-validated
C-contiguous arrays of one float dtype (float32 or float64).
"""

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_Arr = npt.NDArray[np.floating[Any]]
_Scalar = Union[float, int, np.floating[Any]]

UNARY_CODES: Dict[str, int]
BINARY_CODES: Dict[str, int]
FUSED_CODES: Dict[str, int]
TILE_SIZE: int
BLOCK_SIZE: int
GIL_KEEP_BELOW_WORK: int

def set_math_mode(mode: int) -> None: ...
def get_math_mode() -> int: ...
def simd_info() -> Dict[str, Union[str, bool]]: ...
def vexp(x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...
def unary(
    codes: bytes, x: _Arr, *, t: Optional[_Arr] = ..., y_out: Optional[_Arr] = ...,
    d_out: Optional[_Arr] = ..., n_threads: int = ...,
) -> None: ...
def unary_fast(
    codes: bytes, x: object, t: object, value: bool, out: object, n_threads: object,
    work_per_element: int, threshold: int,
) -> Optional[_Arr]: ...
def binary(
    op: int, fcodes: bytes, gcodes: bytes, n: int, w: _Arr, x: _Arr, *,
    w_scalar: bool = ..., x_scalar: bool = ..., dw: Optional[_Arr] = ...,
    dx: Optional[_Arr] = ..., gy: Optional[_Arr] = ..., y_out: Optional[_Arr] = ...,
    jvp_out: Optional[_Arr] = ..., gw_out: Optional[_Arr] = ..., gx_out: Optional[_Arr] = ...,
    want_scalar_grads: bool = ..., n_threads: int = ...,
) -> Tuple[float, float]: ...
def binary_fast(
    op: int, fcodes: bytes, gcodes: bytes, w: object, x: object, gy: object, value: bool,
    out: object, n_threads: object, work_per_element: int, threshold: int,
) -> Union[None, _Arr, Tuple[Union[_Arr, np.floating[Any]], Union[_Arr, np.floating[Any]]]]: ...
def reduce(a: _Arr, b: Optional[_Arr], n_threads: int = ...) -> float: ...
def reduce_fast(
    a: object, b: object, n_threads: object, work_per_element: int, threshold: int,
) -> Optional[np.floating[Any]]: ...
