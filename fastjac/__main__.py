"""``python -m fastjac``: the same as the ``fastjac`` command (see :mod:`fastjac.cli`)."""

import sys

from fastjac.cli import main

if __name__ == "__main__":
    sys.exit(main())
