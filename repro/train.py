"""Training (docs/method.md#training): the method's optimiser (Adam by default) and training step, a cosine schedule
stepped
per epoch, memory items carried across steps and epochs, a checkpoint every k epochs and at the end (the
optimiser's state with it); resumes from the last checkpoint."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from . import runs as run_files
from .data.clips import loader_workers
from .data.layout import video_cameras_of
from .distributed import Ranks, gather_rows, per_rank_batch
from .models.diagnostics import MemoryTally
from .models.method import MemoryItems, Method
from .models.output import ModelOutput

if TYPE_CHECKING:
    from .config import RunConfig


def train_step(
    method: Method,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    target: Tensor,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    observe: Callable[[ModelOutput], None] | None = None,
    settings: Any = None,
) -> dict[str, Tensor]:
    """One training step of `method` on one batch: its `Method.train_step` (by default forward, the method's
    training loss, backward, one optimiser step; a method may run an inner loop, reading its `settings`).
    Returns the detached terms."""
    return method.train_step(model, optimizer, inputs, target, precision, scaler, observe, settings)


def build_model(cfg: RunConfig, device: torch.device | str = "cpu", compile: bool | None = None) -> nn.Module:
    """The configured method's network on `device`, compiled when `compile` (None = cfg.exec.compile)."""
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights and items
    choose_algorithms(torch.device(device), cfg.exec.deterministic)
    method = cfg.model.method
    channels = 1 if cfg.data.grayscale else 3
    model = method.build(cfg.model.settings, channels, cfg.data.size).to(device)
    if cfg.exec.compile if compile is None else compile:
        compile_networks(model, method.eager_parts(model))
    return model


def choose_algorithms(device: torch.device, deterministic: bool) -> None:
    """On CUDA: deterministic algorithms (same seed, same numbers) or cuDNN's fastest (benchmark); the choice
    holds for the process. Ops without a deterministic CUDA kernel warn instead of failing."""
    if device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS reads it when its handle is made
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def compile_networks(model: nn.Module, eager: list[nn.Module], backend: str = "inductor") -> None:
    """torch.compile each part of `model` in place except the `eager` ones (a memory whose update reassigns a
    buffer). In place (`Module.compile`), so parameter names and checkpoints are unchanged."""
    for child in model.children():
        if isinstance(child, nn.ModuleList):
            compile_networks(child, eager, backend)
        elif not any(child is part for part in eager):
            child.compile(backend=backend)


def seeded_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool,
    drop_last: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    ranks: Ranks = Ranks(),
) -> DataLoader:
    """A loader whose order depends only on (seed, epoch), so a resumed run sees the same batches; under
    torchrun each rank reads its own equal share of the clips (padded by repetition to equal length)."""
    if not ranks.distributed:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
    sampler = DistributedSampler(dataset, ranks.world, ranks.rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=per_rank_batch(batch_size, ranks),
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


def _to_device(batch: dict, method: Method, device: torch.device) -> tuple[Tensor, Tensor]:
    inputs, target = (batch[key].to(device, non_blocking=True) for key in ("input", "target"))
    return method.to_input(inputs), method.to_target(target)


def train(
    cfg: RunConfig,
    run: Path,
    dataset: Dataset,
    device: torch.device,
    progress: bool = True,
    ranks: Ranks = Ranks(),
) -> nn.Module:
    """Train from the last checkpoint of `run` (or from scratch) to cfg.train.epochs; returns the model.

    Under torchrun (`ranks.distributed`) every rank trains a DDP replica on its share of each batch and
    only rank 0 writes; the model returned is the plain module.
    """
    method = cfg.model.method
    model = build_model(cfg, device)
    optimizer = method.optimizer(model, cfg.model.settings, cfg.train.lr)
    scheduler = lr_schedule(optimizer, cfg.train.schedule, cfg.train.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.exec.precision == "fp16")
    start = _resume(run, model, optimizer, scheduler, scaler)
    if ranks.main:
        run_files.keep_epochs_up_to(run / "train.jsonl", start)  # epochs after the checkpoint are logged again
    network = _replicate(model, method.state_memory(model), device, ranks)
    cameras = video_cameras_of(dataset)
    camera_of_video = torch.tensor(cameras[0]) if cameras else None
    for epoch in range(start + 1, cfg.train.epochs + 1):
        tick = time.perf_counter()
        workers = loader_workers(dataset, cfg.exec.num_workers)  # decoding on the fly: workers decode
        loader = seeded_loader(
            dataset,
            cfg.train.batch_size,
            cfg.seed,
            epoch,
            cfg.train.shuffle,
            cfg.train.drop_last,
            workers,
            device.type == "cuda",
            ranks,
        )
        sums: dict[str, Tensor] = {}
        tally = MemoryTally(cameras[1] if cameras else None)
        bar = tqdm(
            loader, desc=f"epoch {epoch}/{cfg.train.epochs}", leave=False, disable=not progress or not ranks.main
        )
        for batch in bar:
            observe = partial(tally.add, cameras=camera_of_video[batch["video"]] if cameras else None)
            inputs, target = _to_device(batch, method, device)
            terms = train_step(
                method, network, optimizer, inputs, target, cfg.exec.precision, scaler, observe, cfg.model.settings
            )
            sums = {k: sums.get(k, 0) + v for k, v in terms.items()}
        scheduler.step()
        if not ranks.main:
            continue
        steps = max(len(loader), 1)
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - tick}
        usage = {"memory": tally.summary()} if tally.counts is not None else {}
        run_files.append_jsonl(run / "train.jsonl", record | {k: (v / steps).item() for k, v in sums.items()} | usage)
        if epoch % cfg.train.checkpoint_every == 0 or epoch == cfg.train.epochs:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
            }
            run_files.save_checkpoint(run, epoch, state)
    if network is not model and method.state_memory(model) is not None:
        method.state_memory(model).gather = None  # the returned module updates its items from its own queries
    return model


def lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: "cosine" anneals to 0 over `epochs` (docs/method.md#training), "constant" keeps the lr
    (MemAE's official code, docs/method.md#baselines)."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule == "constant":
        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    raise ValueError(f"unknown train.schedule {schedule!r}; allowed: cosine, constant")


def _replicate(model: nn.Module, memory: MemoryItems | None, device: torch.device, ranks: Ranks) -> nn.Module:
    """The module to train: `model` itself, or under torchrun its DDP replica with the state `memory` updated
    from every rank's queries (the items are a buffer DDP does not broadcast)."""
    if not ranks.distributed:
        return model
    if memory is not None:
        memory.gather = gather_rows
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False
    )


def _resume(run: Path, model: nn.Module, optimizer, scheduler, scaler) -> int:
    """Load the newest readable checkpoint into model, optimiser, schedule and loss scaler; the epoch it ends,
    or 0 (unreadable newer ones are moved aside and retrained)."""
    latest = run_files.latest_readable_checkpoint(run)
    if latest is None:
        return 0
    epoch, state = latest
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state.get("scaler", {}))
    return epoch
