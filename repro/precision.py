"""Mixed precision: autocast for the convolutions; the memory maths stays in fp32 (see MNAD.forward)."""

from __future__ import annotations

import contextlib
import warnings

import torch


class SlowPrecisionWarning(UserWarning):
    """The asked-for precision has no hardware support here and runs slower than fp32."""


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """A context that runs eligible ops in `precision` ("fp32" | "bf16" | "fp16") on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
    device_type = torch.device(device).type
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    if precision == "fp16" and device_type == "cpu":
        raise ValueError("precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
    if precision == "bf16" and device_type == "cpu" and "AVX512" not in torch.backends.cpu.get_cpu_capability():
        warnings.warn(
            f"bf16 on a CPU with {torch.backends.cpu.get_cpu_capability()} only (no AVX-512 BF16/AMX) is emulated "
            "and many times slower than fp32 (repro bench measures it); use --precision fp32",
            SlowPrecisionWarning,
            stacklevel=2,
        )
    return torch.autocast(device_type, dtype=PRECISIONS[precision])


def full_precision(device: torch.device | str) -> contextlib.AbstractContextManager:
    """A context where autocast is off (the memory maths); a no-op on devices without autocast (meta)."""
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type, enabled=False)
