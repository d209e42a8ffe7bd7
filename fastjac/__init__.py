"""fastjac: the matrix calculus of deep learning as a fast gradient backend."""
__version__ = "0.1.0"
