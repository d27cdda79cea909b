"""Training (SPEC sec. 4): Adam on the network, a cosine schedule stepped per epoch, memory items carried
across steps and epochs, a checkpoint every k epochs and at the end; resumes from the last checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from .distributed import Ranks, gather_rows, per_rank_batch
from .models.memae import MemoryModule
from .models.memory import Memory
from .models.registry import ModelEntry, model_entry
from .precision import autocast

if TYPE_CHECKING:
    from .config import RunConfig
    from .runs import RunStore

ADAM_BETAS = (0.9, 0.999)
MEMORIES = (Memory, MemoryModule)  # MNAD's and MemAE's


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, target: Tensor, precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Tensor]:
    """One optimisation step of eq. 8: L = L_rec + the model's weighted feature losses.

    Returns the detached terms (pixel, each feature loss, total) without a host sync. `scaler` scales the
    loss for fp16 (a disabled or absent scaler is a plain backward and step).
    """
    model.train()
    with autocast(inputs.device, precision):
        result = model(inputs)
    terms = {"pixel": F.mse_loss(result.output.float(), target)} | result.losses
    total = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        total.backward()
        optimizer.step()
    else:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    return {name: value.detach() for name, value in (terms | {"total": total}).items()}


def model_kwargs(cfg: RunConfig) -> dict:
    """The constructor arguments of the configured model (models know nothing of configs)."""
    m, loss, channels = cfg.model, cfg.loss, 1 if cfg.data.grayscale else 3
    if m.name == "mnad":
        return dict(
            task=m.task, memory=m.memory, skips=m.skips, width=m.width, num_items=m.num_items, decoder=m.decoder,
            channels=channels, compactness_weight=loss.compactness, separateness_weight=loss.separateness,
            separateness_margin=loss.separateness_margin, uniform_memory_weight=loss.uniform_memory,
            update_normaliser=m.update_normaliser, item_init=m.item_init,
            diversity_weight=m.diversity, kmeans_init_steps=m.kmeans_init_steps,
            reseed_after_steps=m.reseed_after_steps,
        )  # fmt: skip
    if m.name in ("memae", "ae3d"):
        kwargs = dict(channels=channels, width=m.memae_width)
        if m.name == "memae":
            kwargs |= dict(num_items=m.memae_items, shrink_threshold=m.shrink_threshold, addressing=m.addressing,
                           entropy_weight=loss.entropy)  # fmt: skip
        return kwargs
    return dict(channels=channels, size=cfg.data.size)


def build_model(cfg: RunConfig, device: torch.device | str = "cpu", compile: bool | None = None) -> nn.Module:
    """The configured model on `device`, compiled when `compile` (None = cfg.exec.compile)."""
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights and items
    model = model_entry(cfg.model.name).build(**model_kwargs(cfg)).to(device)
    if cfg.exec.compile if compile is None else compile:
        compile_networks(model)
    return model


def compile_networks(model: nn.Module, backend: str = "inductor") -> None:
    """torch.compile each part of `model` in place except its memory, whose update reassigns a buffer and
    runs eagerly. In place (`Module.compile`), so parameter names and checkpoints are unchanged."""
    for child in model.children():
        if isinstance(child, nn.ModuleList):
            compile_networks(child, backend)
        elif not isinstance(child, MEMORIES):
            child.compile(backend=backend)


def seeded_loader(dataset: Dataset, batch_size: int, seed: int, epoch: int, shuffle: bool, drop_last: bool,
                  num_workers: int = 0, pin_memory: bool = False, ranks: Ranks = Ranks()) -> DataLoader:
    """A loader whose order depends only on (seed, epoch), so a resumed run sees the same batches; under
    torchrun each rank reads its own equal share of the clips (padded by repetition to equal length)."""
    if not ranks.distributed:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator,
                          num_workers=num_workers, pin_memory=pin_memory)  # fmt: skip
    sampler = DistributedSampler(dataset, ranks.world, ranks.rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=per_rank_batch(batch_size, ranks), sampler=sampler, drop_last=drop_last,
                      num_workers=num_workers, pin_memory=pin_memory)  # fmt: skip


def _to_device(batch: dict, entry: ModelEntry, device: torch.device) -> tuple[Tensor, Tensor]:
    inputs, target = (batch[key].to(device, non_blocking=True) for key in ("input", "target"))
    return entry.to_input(inputs), entry.to_target(target)


def train(cfg: RunConfig, run: Path, store: RunStore, dataset: Dataset, device: torch.device,
          progress: bool = True, ranks: Ranks = Ranks()) -> nn.Module:
    """Train from the last checkpoint of `run` (or from scratch) to cfg.train.epochs; returns the model.

    Under torchrun (`ranks.distributed`) every rank trains a DDP replica on its share of each batch and
    only rank 0 writes; the model returned is the plain module.
    """
    entry = model_entry(cfg.model.name)
    model = build_model(cfg, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr, betas=ADAM_BETAS)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.exec.precision == "fp16")
    start = _resume(run, store, model, optimizer, scheduler, scaler)
    network = _replicate(model, device, ranks)
    for epoch in range(start + 1, cfg.train.epochs + 1):
        tick = time.perf_counter()
        loader = seeded_loader(dataset, cfg.train.batch_size, cfg.seed, epoch, cfg.train.shuffle, cfg.train.drop_last,
                               cfg.exec.num_workers, device.type == "cuda", ranks)  # fmt: skip
        sums: dict[str, Tensor] = {}
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.train.epochs}", leave=False, disable=not progress or not ranks.main)
        for batch in bar:
            terms = train_step(network, optimizer, *_to_device(batch, entry, device), cfg.exec.precision, scaler)
            sums = {k: sums.get(k, 0) + v for k, v in terms.items()}
        scheduler.step()
        if not ranks.main:
            continue
        steps = max(len(loader), 1)
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - tick}
        store.append_jsonl(run / "train.jsonl", record | {k: (v / steps).item() for k, v in sums.items()})
        if epoch % cfg.train.checkpoint_every == 0 or epoch == cfg.train.epochs:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch}  # fmt: skip
            store.save_checkpoint(run, epoch, state)
    if network is not model and isinstance(getattr(model, "memory", None), Memory):
        model.memory.gather = None  # the returned module updates its items from its own queries again
    return model


def _replicate(model: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """The module to train: `model` itself, or under torchrun its DDP replica with the memory updated from
    every rank's queries (the items are a buffer DDP does not broadcast)."""
    if not ranks.distributed:
        return model
    if isinstance(getattr(model, "memory", None), Memory):
        model.memory.gather = gather_rows
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   broadcast_buffers=False)  # fmt: skip


def _resume(run: Path, store: RunStore, model: nn.Module, optimizer, scheduler, scaler) -> int:
    """Load the newest checkpoint into model, optimiser, schedule and loss scaler; the epoch it ends, or 0."""
    latest = store.latest_checkpoint(run)
    if latest is None:
        return 0
    epoch, path = latest
    state = store.load_checkpoint(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state.get("scaler", {}))
    return epoch
