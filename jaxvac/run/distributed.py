"""Multi-process runs with ``jax.distributed``: start-up and a barrier.

Each process of a run reads its own share of the inputs, computes on its own local devices
(no cross-process collectives are needed for inference) and writes its own parts; process 0
merges once every process has passed the final barrier.

Start-up: explicit ``coordinator`` (host:port), ``num_processes`` and ``process_id``, or, when
none is given and the job runs under SLURM (SLURM_NTASKS > 1) or Open MPI
(OMPI_COMM_WORLD_SIZE > 1), JAX's own cluster auto-detection.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax

BARRIER_TIMEOUT_MS = 24 * 3600 * 1000  # a share of a data release can take hours


def cluster_size_from_env() -> int:
    """Processes announced by SLURM or Open MPI in the environment (1 when neither)."""
    for key in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        try:
            n = int(os.environ.get(key, "1"))
        except ValueError:
            continue
        if n > 1:
            return n
    return 1


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int, Callable[[str], None] | None]:
    """Join a jax.distributed run when asked or when a cluster is detected.

    Returns (process_id, num_processes, barrier); barrier is None for a single process.
    Must be called before any other JAX computation.
    """
    explicit = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(explicit) and not all(explicit):
        raise ValueError("give all of --coordinator, --num-processes and --process-id, or none of them "
                         "(SLURM and Open MPI are detected automatically).")
    if all(explicit):
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process-id must be in [0, {num_processes}), got {process_id}.")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    elif cluster_size_from_env() > 1:
        jax.distributed.initialize()
    else:
        return 0, 1, None
    return jax.process_index(), jax.process_count(), barrier


def barrier(name: str) -> None:
    """Block until every process of the jax.distributed run reaches barrier ``name``."""
    from jax._src import distributed as _dist  # the client's barrier has no public wrapper in jax 0.10

    client = _dist.global_state.client
    if client is None:
        raise RuntimeError("jaxvac.run.distributed.barrier needs jax.distributed to be initialised first.")
    client.wait_at_barrier(name, timeout_in_ms=BARRIER_TIMEOUT_MS)
