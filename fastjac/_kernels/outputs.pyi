"""Type stub of the compiled module fastjac._kernels.outputs (hand-written): the memory of
fastjac's output arrays (the output cache). Kernel modules use its C API (outputs.pxd,
``new_output``) through ``__pyx_capi__``."""

from typing import Any, Dict, Sequence, Union

import numpy as np
import numpy.typing as npt

__pyx_capi__: Dict[str, Any]

def empty(shape: Union[int, Sequence[int]], dtype: npt.DTypeLike) -> np.ndarray: ...
def set_output_cache(max_bytes: int) -> int: ...
def output_cache_info() -> Dict[str, int]: ...
def _limit_from_env() -> int: ...
