# The one place where fastjac's kernels allocate the arrays they return:
#
#     from fastjac._kernels.outputs cimport new_output
#     res = new_output(nd, dims, typenum)     # like cnp.PyArray_EMPTY(nd, dims, typenum, 0)
#
# A large output takes its memory from fastjac's output cache (see outputs.pyx): memory that
# a previous output gave back when it was freed, so writing the result does not page-fault.
# Python code calls ``fastjac._kernels.outputs.empty(shape, dtype)``.

cimport numpy as cnp

cdef object new_output(int nd, cnp.npy_intp* dims, int typenum)
