"""Rebuild a net to the layer shapes in a state_dict, so shrunk models load without pickled modules.

Structured pruning saves only tensors (`model.pt` stays `weights_only`-loadable); the layer
sizes are implicit in those tensors. `conform` reads them back and swaps each Conv2d,
BatchNorm2d and Linear whose saved shape differs for a fresh layer of the saved shape, keeping
every other hyper-parameter (kernel, stride, padding, bias, eps, ...). It touches nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
from torch import nn

from prunelab.errors import PrunelabError

RESIZABLE = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def _saved_shape(module: nn.Module, name: str, state: Mapping[str, torch.Tensor]):
    prefix = f"{name}." if name else ""
    # A BatchNorm without affine parameters still carries its size in running_mean.
    for key in ("weight", "running_mean"):
        if f"{prefix}{key}" in state:
            return tuple(state[f"{prefix}{key}"].shape)
    return None


def _resized(module: nn.Module, shape: tuple[int, ...], name: str) -> nn.Module:
    """A fresh layer of `module`'s kind and settings at the saved `shape`, on its device/dtype."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise PrunelabError(f"cannot resize grouped conv '{name}' (groups={module.groups})")
        layer: nn.Module = nn.Conv2d(
            shape[1],
            shape[0],
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
        )
    elif isinstance(module, nn.Linear):
        layer = nn.Linear(shape[1], shape[0], bias=module.bias is not None)
    else:
        layer = nn.BatchNorm2d(
            shape[0],
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
    ref = next(itertools.chain(module.parameters(), module.buffers()), None)
    # .to(dtype) converts only floating tensors: BatchNorm's integer counter stays int64.
    return layer if ref is None else layer.to(device=ref.device, dtype=ref.dtype)


def _current_shape(module: nn.Module) -> tuple[int, ...]:
    if isinstance(module, nn.BatchNorm2d):
        return (module.num_features,)
    return tuple(module.weight.shape)


def conform(net: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Resize `net`'s Conv2d/BatchNorm2d/Linear layers (in place) to the shapes in `state_dict`."""
    replacements = []
    for name, module in net.named_modules():
        if not name or not isinstance(module, RESIZABLE):
            continue  # a bare layer as the whole net has no parent to swap it in
        shape = _saved_shape(module, name, state_dict)
        if shape is None or shape == _current_shape(module):
            continue
        if isinstance(module, nn.Conv2d) and shape[2:] != tuple(module.kernel_size):
            raise PrunelabError(
                f"'{name}': saved kernel {shape[2:]} differs from the architecture's "
                f"{tuple(module.kernel_size)}: the model config does not match the weights"
            )
        replacements.append((name, _resized(module, shape, name)))
    # Swap after the walk: replacing children while named_modules() iterates is unsafe.
    for name, layer in replacements:
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, layer)
    return net
