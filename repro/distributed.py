"""One long run on several GPUs (or CPU processes) under torchrun (docs/configs.md#several-processes-torchrun).

Every rank trains a DDP replica on its share of each batch; the MNAD memory is updated with the queries of
all ranks (gathered in rank order), so the items stay identical everywhere without a broadcast. Rank 0 owns
the run folder: lock, status, checkpoints, train.jsonl, and the evaluation, whose test-time update is
sequential and runs on one device.

    torchrun --standalone --nproc_per_node 4 --no-python \
        repro train --profile paper --data /datasets --dataset shanghaitech
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def ranks_from_environment() -> Ranks:
    """torchrun's RANK, WORLD_SIZE and LOCAL_RANK; one process when they are absent."""
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def join(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on the CPU); returns this rank's device."""
    if not ranks.distributed:
        return device
    if device.type == "cuda":
        if ranks.local >= torch.cuda.device_count():
            raise ValueError(
                f"torchrun started local rank {ranks.local}, but this machine has {torch.cuda.device_count()} "
                "CUDA GPU(s): one process per GPU (--nproc_per_node at most the GPU count), or --set exec.device=cpu"
            )
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def gather_rows(rows: Tensor) -> Tensor:
    """(world * n, d): the (n, d) rows of every rank in rank order; n must be equal on all ranks."""
    parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


def per_rank_batch(batch_size: int, ranks: Ranks) -> int:
    """The configured batch split over the ranks, so the optimisation (and the run's hash) stay the same."""
    if batch_size % ranks.world:
        raise ValueError(
            f"train.batch_size={batch_size} does not split over {ranks.world} processes; "
            f"use a multiple of {ranks.world} or fewer processes"
        )
    return batch_size // ranks.world
