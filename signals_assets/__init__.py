import os

# numpy's OpenBLAS lets a worker thread spin after each matrix product before it sleeps. Between the
# consolidation's many block products that spinning burnt a sixth of a large batch run's CPU and slowed
# the runs beside it; at 4, OpenBLAS's least, the workers sleep at once and the products keep their
# threads (benchmarks/README.md, "BLAS threads"). OpenBLAS reads it when numpy is first imported, which
# the package does only inside the functions that use it, so after this. A value already set wins
# (empty: OpenBLAS's own default).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
