"""Type stub of the compiled module fastjac._kernels.fused (hand-written).

The fused-expression interpreter behind ``fastjac.fuse``: a :class:`Program` is a traced
DAG compiled to op codes; ``run`` takes validated C-contiguous arrays of one float dtype,
``call_fast`` checks and runs the common calls itself (None: use the general path).
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_Arr = npt.NDArray[np.floating[Any]]

UNARY_CODES: Dict[str, int]
BINARY_CODES: Dict[str, int]
FUSED_CODES: Dict[str, int]
N_STAGE_CODES: int

def op_codes() -> Dict[str, int]: ...
def _set_tile_length(m: int) -> int: ...
def _set_quotient_merge(on: bool) -> bool: ...

@disjoint_base
class Program:
    def __init__(
        self, n_in: int, n_const: int, op: Sequence[int], a: Sequence[int], b: Sequence[int],
        param: Sequence[float], pk: Sequence[int], pc: Sequence[float], pr: Sequence[int],
        consts: Sequence[float], out_reg: int,
    ) -> None: ...
    @property
    def n_nodes(self) -> int: ...
    def run(
        self, inputs: Tuple[_Arr, ...], scalar: Tuple[bool, ...], *,
        tangents: Optional[Sequence[Optional[_Arr]]] = ..., gy: Optional[_Arr] = ...,
        y_out: Optional[_Arr] = ..., jvp_out: Optional[_Arr] = ...,
        grad_out: Optional[Sequence[Optional[_Arr]]] = ...,
        grad_mode: Optional[Sequence[int]] = ..., n_threads: int = ...,
    ) -> List[float]: ...
    def set_serial_limit(self, work: int, threshold: int) -> None: ...
    def call_fast(
        self, args: Tuple[Any, ...], gy: Any, mode: int, n_threads: Optional[int],
        out: Any = ...,
    ) -> Union[None, _Arr, Tuple[_Arr, ...]]: ...
