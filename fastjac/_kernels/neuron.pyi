"""Type stub of the compiled module fastjac._kernels.neuron (hand-written).

Every function takes already-validated C-contiguous arrays (see fastjac/neuron.py); the
f64/f32 twins differ only in the dtype of X, y, w and of the array outputs.
"""

from typing import Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]
_F32 = npt.NDArray[np.float32]
_Index = npt.NDArray[np.intp]

def blocks(N: int, n: int) -> Tuple[int, int]: ...
def loss_grad_sums_f64(
    X: _F64, y: _F64, w: _F64, b: float, gw_scale: float, gw_out: Optional[_F64],
    gx_scale: float, gX_out: Optional[_F64], n_threads: int,
) -> Tuple[float, float]: ...
def loss_grad_sums_f32(
    X: _F32, y: _F32, w: _F32, b: float, gw_scale: float, gw_out: Optional[_F32],
    gx_scale: float, gX_out: Optional[_F32], n_threads: int,
) -> Tuple[float, float]: ...
def loss_grad_fast(
    X: object, y: object, w: object, b: object, gw_out: object, n_threads: object,
    threshold: int, want_grad: bool = ...,
) -> Optional[Union[Tuple[float, np.ndarray, float], float]]: ...
def forward_f64(
    X: _F64, w: _F64, b: float, act_out: Optional[_F64], mask_out: Optional[_F64], n_threads: int
) -> None: ...
def forward_f32(
    X: _F32, w: _F32, b: float, act_out: Optional[_F32], mask_out: Optional[_F32], n_threads: int
) -> None: ...
def fit_f64(
    X: _F64, y: _F64, w: _F64, b: float, lr: float, epochs: int, batch: int,
    orders: Optional[_Index], losses: _F64, n_threads: int,
) -> Tuple[float, int, int]: ...
def fit_f32(
    X: _F32, y: _F32, w: _F64, b: float, lr: float, epochs: int, batch: int,
    orders: Optional[_Index], losses: _F64, n_threads: int,
) -> Tuple[float, int, int]: ...
