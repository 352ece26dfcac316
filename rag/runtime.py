"""Process-wide settings for running the model on a small CPU, applied once where an engine starts.

`configure()` is called by `Engine()` and by `load_embedder()` (so the benchmark scripts,
which load the model directly, get it too). It is idempotent, and every environment
variable it sets is only a default: a value the user exported wins.

- numpy's BLAS runs on one thread (threadpoolctl): its threads fight the encoder for the
  cores and added ~100 ms per question on two cores.
- FAISS searches on one thread: a query is one vector, and OpenMP start-up costs more
  than the search.
- OMP_WAIT_POLICY=PASSIVE, set before torch is first imported (the model is loaded
  lazily): spinning OpenMP threads turn a 100 ms question into seconds when another
  process (an indexing job, a second session) wants the cores.
- HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: models are never fetched from a hub.
"""

from __future__ import annotations

import os
import threading

_done = False
_lock = threading.Lock()

ENV_DEFAULTS = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def configure() -> None:
    global _done
    with _lock:
        if _done:
            return
        for name, value in ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        import faiss
        from threadpoolctl import ThreadpoolController

        faiss.omp_set_num_threads(1)
        if "OPENBLAS_NUM_THREADS" not in os.environ:  # numpy's OpenBLAS only, not torch's own pools
            ThreadpoolController().select(internal_api="openblas").limit(limits=1)
        _done = True
