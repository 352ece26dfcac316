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


RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "fma")


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # bfloat16 computed natively


def cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of a /proc/cpuinfo text."""
    return {f for line in cpuinfo.splitlines() if line.startswith("flags") for f in line.partition(":")[2].split()}


def cpu_flags_line() -> str:
    """The CPU's flags that decide embedding speed, for benchmark tables: e.g.
    'CPU: Intel Xeon … (2 cores) — avx2 avx512f avx512_bf16 amx_bf16 (bfloat16 native)'."""
    from pathlib import Path

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU: unknown (no /proc/cpuinfo)"
    name = next((line.partition(":")[2].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = cpu_flags(info)
    have = [f for f in RELEVANT_FLAGS if f in flags]
    native = bool(flags & BF16_FLAGS)
    return (f"CPU: {name} ({os.cpu_count()} cores) — {' '.join(have) or 'none of ' + ' '.join(RELEVANT_FLAGS)} "
            f"({'bfloat16 native' if native else 'no native bfloat16'})")
