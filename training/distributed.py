"""Multi-process data parallelism (``torchrun``) in a few helpers; a single process needs none of it.

``torchrun --nproc_per_node=N -m training.cli stage1 --config …`` sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; :func:`init` starts the process group (NCCL on GPUs, gloo on CPU). Each process trains
on its shard of every batch; gradients are averaged by ``DistributedDataParallel``, so the weights stay
identical on every rank. :func:`gather` concatenates features of all ranks *with* gradients, so the
contrastive similarity matrix spans the global batch. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init(device_pref: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); otherwise a no-op."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_pref != "cpu"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        log.info("process %d of %d joined the process group (%s)", rank, world, dist.get_backend())
    return DistContext(rank, world, local_rank)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def gather(ctx: DistContext, x: Tensor, *, grad: bool = True) -> Tensor:
    """Concatenate ``x`` (same shape on every rank) along dim 0 over ranks; gradients flow back to each
    rank's own slice when ``grad``."""
    if not ctx.enabled:
        return x
    if grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(ctx.world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def max_over_ranks(ctx: DistContext, value: int, device: torch.device) -> int:
    if not ctx.enabled:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_flag(ctx: DistContext, flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (0: leave torch's setting), then restore the old count."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
