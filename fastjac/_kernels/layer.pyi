"""Type stub of the compiled module fastjac._kernels.layer (hand-written).

Every function takes already-validated C-contiguous arrays (see fastjac/layer.py); the
f64/f32 twins differ only in the dtype of the data arrays and of the array outputs (b is
always float64).
"""

from typing import Any, Optional, Tuple

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]
_F32 = npt.NDArray[np.float32]
_Index = npt.NDArray[np.intp]

MODE_LOSS: int
MODE_VJP: int
MODE_ACT: int

def _set_block_level(level: int) -> int: ...
def blocks(N: int, n: int, m: int) -> Tuple[int, int]: ...
def onepass_f64(
    mode: int, X: _F64, Y: Optional[_F64], A: Optional[_F64], G: Optional[_F64], W: _F64,
    b: Optional[_F64], out: Optional[_F64], gw_scale: float, gW: Optional[_F64],
    gb_scale: float, gb: Optional[_F64], gx_scale: float, gX: Optional[_F64], n_threads: int,
) -> float: ...
def onepass_f32(
    mode: int, X: _F32, Y: Optional[_F32], A: Optional[_F32], G: Optional[_F32], W: _F32,
    b: Optional[_F64], out: Optional[_F32], gw_scale: float, gW: Optional[_F32],
    gb_scale: float, gb: Optional[_F32], gx_scale: float, gX: Optional[_F32], n_threads: int,
) -> float: ...
def loss_grad_fast(
    X: Any, Y: Any, W: Any, b: Any, out: Any, n_threads: Any, onepass_max_f64: int,
    onepass_max_f32: int, threshold: int, want_grad: bool = ...,
) -> Any: ...
def between_f64(
    mode: int, Z: _F64, Y: Optional[_F64], A: Optional[_F64], b: Optional[_F64],
    scale: float, gb_scale: float, gb_out: Optional[_F64], n_threads: int,
) -> float: ...
def between_f32(
    mode: int, Z: _F32, Y: Optional[_F32], A: Optional[_F32], b: Optional[_F64],
    scale: float, gb_scale: float, gb_out: Optional[_F32], n_threads: int,
) -> float: ...
def fit_f64(
    X: _F64, Y: _F64, W: _F64, b: _F64, lr: float, epochs: int, batch: int,
    orders: Optional[_Index], losses: _F64, n_threads: int,
) -> Tuple[int, int]: ...
def fit_f32(
    X: _F32, Y: _F32, W: _F64, b: _F64, lr: float, epochs: int, batch: int,
    orders: Optional[_Index], losses: _F64, n_threads: int,
) -> Tuple[int, int]: ...
def _set_blas_blocking(
    min_rows: Optional[int] = ..., min_work: Optional[int] = ..., enabled: Optional[bool] = ...,
) -> Tuple[int, int, bool]: ...
def blas_library() -> Optional[str]: ...
def blas_blocks(N: int, n: int, m: int, itemsize: int) -> int: ...
def blas_f64(
    mode: int, X: _F64, Y: Optional[_F64], A: Optional[_F64], G: Optional[_F64], W: _F64,
    b: Optional[_F64], Z: _F64, scale: float, gb_scale: float, gW: Optional[_F64],
    gb: Optional[_F64], gX: Optional[_F64], n_threads: int,
) -> Optional[float]: ...
def blas_f32(
    mode: int, X: _F32, Y: Optional[_F32], A: Optional[_F32], G: Optional[_F32], W: _F32,
    b: Optional[_F64], Z: _F32, scale: float, gb_scale: float, gW: Optional[_F32],
    gb: Optional[_F32], gX: Optional[_F32], n_threads: int,
) -> Optional[float]: ...
