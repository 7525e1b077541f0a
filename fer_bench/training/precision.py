"""Which arithmetic a run uses: bf16 autocast only where the hardware runs bf16 natively.

Without native bf16 (a CPU lacking AVX512/AMX, a GPU older than Ampere) the kernels
emulate it: on an AVX2-only EPYC a ferplus-cpu training step took 3.5 s in bf16 against
0.3 s in fp32. There a run asked for bf16 trains in fp32 and its record says so.
"""

from __future__ import annotations

import warnings

import torch


def native_bf16(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def resolve_precision(bf16: bool, device: str) -> str:
    """'bf16' (autocast) or 'fp32': what a config asking for ``bf16`` runs as on ``device``."""
    if not bf16:
        return "fp32"
    if native_bf16(device):
        return "bf16"
    warnings.warn(
        f"bf16 autocast was asked for, but this {device} has no native bf16 (it would be "
        "emulated, about ten times slower): training in fp32; the run record says so",
        stacklevel=2,
    )
    return "fp32"
