"""Type stub of the compiled module fastjac._kernels.pool (hand-written): fastjac's thread
pool. Kernel modules use its C API (pool.pxd) through ``__pyx_capi__``."""

from typing import Any, Dict, Optional

__pyx_capi__: Dict[str, Any]

MAX_THREADS: int
TEST_SHUFFLE: int
TEST_LATE: int
TEST_PAUSE: int
TEST_SLOW_CALLER: int
TEST_NO_THRESHOLD: int

def resolve(requested: Optional[int], work: int, threshold: int) -> int: ...
def cpu_count() -> int: ...
def set_max_threads(n: Optional[int]) -> int: ...
def thread_info() -> Dict[str, Any]: ...
def _set_test_flags(flags: int) -> int: ...
