"""FSDP2 (`fully_shard`) for Lightning's ModelParallelStrategy.

Lightning's FSDP1 strategy does not run on CPU and breaks manual-optimization PPO with
`generate`; FSDP2 applied in `configure_model` does both, so it is the project's FSDP.
"""

from __future__ import annotations

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks, found by class name so any HF decoder works."""
    blocks = [m for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "Block"))]
    return blocks


def shard_model(model: nn.Module, device_mesh, param_dtype: str | None = None) -> nn.Module:
    """fully_shard every decoder block, then the root, over the data-parallel mesh dimension."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = device_mesh["data_parallel"] if "data_parallel" in (device_mesh.mesh_dim_names or ()) else device_mesh
    kwargs = {"mesh": mesh}
    if param_dtype == "bfloat16":
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for block in decoder_layers(model):
        fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A full, CPU state dict on every rank, whether or not the model is sharded."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
