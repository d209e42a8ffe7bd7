"""Collection rules shared by the whole suite.

``tests/fuzz/`` holds the hypothesis fuzz suite. The main run does not collect it: it runs
once, in a child interpreter, from ``tests/test_reliability.py::test_fuzz_suite_in_a_subprocess``
so that a segfault in a kernel fails one test instead of killing pytest (and the fuzz is
not run twice). The child sets ``FASTJAC_FUZZ_CHILD=1``; set it yourself to run the fuzz
suite directly: ``FASTJAC_FUZZ_CHILD=1 python -m pytest tests/fuzz``.
"""

import os

collect_ignore = [] if os.environ.get("FASTJAC_FUZZ_CHILD") else ["fuzz"]
