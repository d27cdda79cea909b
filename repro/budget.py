"""What a run needs before it allocates anything: its network built on the meta device (no memory) and one
training batch traced through it, so a size that cannot fit is refused in one line instead of a crash mid-run.

    needs = run_needs(cfg)           # RunNeeds(parameters=..., training_bytes=...)
    check_fits(cfg, torch.device("cpu"))   # a ConfigError naming the settings when it cannot fit
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .settings import ConfigError

GB = 1e9
ADAM_COPIES = 4  # the weights, their gradients and Adam's two moments, each as large as the weights


@dataclass(frozen=True)
class RunNeeds:
    parameters: int  # elements of the network's weights and buffers (memory items included)
    activations: int  # elements of every leaf module's output for one training batch (kept for the backward pass)
    bytes_per_element: int

    @property
    def training_bytes(self) -> int:
        return (ADAM_COPIES * self.parameters + self.activations) * self.bytes_per_element


def _elements(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (tuple, list)):
        return sum(map(_elements, value))
    if isinstance(value, dict):
        return sum(map(_elements, value.values()))
    fields = getattr(value, "__dict__", None) or getattr(value, "_asdict", lambda: None)()
    return sum(map(_elements, fields.values())) if isinstance(fields, dict) else 0


def run_needs(cfg) -> RunNeeds:
    """The run's weights and one training batch's activations, counted on the meta device (nothing allocated).
    A network whose forward the meta device cannot trace is counted by its weights alone."""
    method = cfg.model.method
    channels = 1 if cfg.data.grayscale else 3
    with torch.device("meta"):
        model = method.build(cfg.model.settings, channels, cfg.data.size)
    parameters = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    layout = method.layout(cfg.model.settings)
    clips = torch.empty(cfg.train.batch_size, layout.in_frames, channels, cfg.data.size, cfg.data.size, device="meta")
    outputs: list[int] = []
    leaves = [m for m in model.modules() if next(m.children(), None) is None]  # a container repeats its children's
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(_elements(out))) for m in leaves]
    try:
        model.train()
        model(method.to_input(clips))
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: the weights are still counted
        outputs.clear()
    finally:
        for hook in hooks:
            hook.remove()
    return RunNeeds(parameters, sum(outputs), 2 if cfg.exec.precision in ("bf16", "fp16") else 4)


def available_bytes(device: torch.device) -> int | None:
    """Memory this process could still allocate on `device` (Linux MemAvailable, or CUDA's free memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(cfg, device: torch.device) -> RunNeeds:
    """A ConfigError, before anything is allocated, when training `cfg` needs more memory than `device` has."""
    needs = run_needs(cfg)
    free = available_bytes(device)
    if free is not None and needs.training_bytes > free:
        raise ConfigError(
            f"this run needs about {needs.training_bytes / GB:.1f} GB to train ({needs.parameters:,} weights incl. "
            f"memory items, {needs.activations:,} activations per batch of {cfg.train.batch_size} at "
            f"data.size={cfg.data.size}) but {free / GB:.1f} GB are free on {device}. Fix: lower data.size, "
            "train.batch_size or the model's width / number of items (--set KEY=VALUE; docs/configs.md lists them)"
        )
    return needs
