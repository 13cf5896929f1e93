"""corrbench: benchmark image classifiers under common corruptions. `corrbench.evaluate(model, suite)` is
the Python API, `corrbench.compare(results, a, b)` the paired comparison (imported on first use, so `import corrbench` stays light)."""
import os

# OpenMP threads that finish a parallel region early sleep instead of spinning. Spinning threads take the
# cores their partners need when the machine is busy: make-c of 10,000 CIFAR images took 6.4× longer with
# torch's 2 threads than with 1 on a loaded 2-core machine, and ~1× once they sleep (benchmarks/threads.py).
# Read when torch loads its OpenMP runtime, so it only acts if corrbench is imported first (the CLI is);
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["evaluate", "compare", "Results", "__version__"]


def __getattr__(name: str):
    if name in ("evaluate", "compare", "Results"):
        from corrbench import api
        return getattr(api, name)
    raise AttributeError(f"module 'corrbench' has no attribute '{name}'")
