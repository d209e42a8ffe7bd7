"""Developer tools of fastjac (not part of the public API; not installed by a wheel)."""
