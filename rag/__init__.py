"""Grounded multilingual question answering over a folder of documents."""

import os

# numpy's BLAS (OpenBLAS) threads fight the encoder for the 2 cores and add ~100 ms per
# question; pin them before numpy is imported (an explicit setting wins).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# torch's OpenMP threads spin while waiting; when another process (an indexing job, a
# second session) wants the cores, spinning turns a 100 ms question into seconds.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
