"""Collection rules shared by the whole suite.

``tests/fuzz/`` holds the hypothesis fuzz suite. The main run does not collect it: it runs
once, in a child interpreter, from ``tests/test_reliability.py::test_fuzz_suite_in_a_subprocess``
so that a segfault in a kernel fails one test instead of killing pytest (and the fuzz is
not run twice). An explicit path is still collected, so the fuzz suite runs directly with
``python -m pytest tests/fuzz`` (add ``FASTJAC_FUZZ_PROFILE=large`` for a long random run,
or ``FASTJAC_FUZZ_EXAMPLES=N`` to set the examples per test).
"""

import os

collect_ignore = [] if os.environ.get("FASTJAC_FUZZ_CHILD") else ["fuzz"]
