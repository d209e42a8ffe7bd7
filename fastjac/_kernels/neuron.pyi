"""Type stub of the compiled module fastjac._kernels.neuron (hand-written).

Every function takes already-validated C-contiguous arrays (see fastjac/neuron.py); the
f64/f32 twins differ only in the dtype of X, y, w and of the array outputs.
"""

from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Index = npt.NDArray[np.intp]

def openmp_enabled() -> bool: ...
def blocks(N: int, n: int) -> Tuple[int, int]: ...
def loss_grad_sums_f64(
    X: F64, y: F64, w: F64, b: float, gw_scale: float, gw_out: Optional[F64],
    gx_scale: float, gX_out: Optional[F64], n_threads: int,
) -> Tuple[float, float]: ...
def loss_grad_sums_f32(
    X: F32, y: F32, w: F32, b: float, gw_scale: float, gw_out: Optional[F32],
    gx_scale: float, gX_out: Optional[F32], n_threads: int,
) -> Tuple[float, float]: ...
def forward_f64(
    X: F64, w: F64, b: float, act_out: Optional[F64], mask_out: Optional[F64], n_threads: int
) -> None: ...
def forward_f32(
    X: F32, w: F32, b: float, act_out: Optional[F32], mask_out: Optional[F32], n_threads: int
) -> None: ...
def fit_f64(
    X: F64, y: F64, w: F64, b: float, lr: float, epochs: int, batch: int,
    orders: Optional[Index], losses: F64, n_threads: int,
) -> Tuple[float, int, int]: ...
def fit_f32(
    X: F32, y: F32, w: F64, b: float, lr: float, epochs: int, batch: int,
    orders: Optional[Index], losses: F64, n_threads: int,
) -> Tuple[float, int, int]: ...
