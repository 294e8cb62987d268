"""Model size: parameter counts, the dense file, and a lossless sparse export.

The sparse format (`save_sparse`/`load_sparse`) stores every state_dict tensor bit for bit.
A floating tensor with enough zeros is written as a packed zero-bitmap, the sign bits of its
zeros (pruning leaves -0.0 wherever a negative weight was multiplied by its mask, and a
bit-identical round trip must keep them), and its nonzero values byte-shuffled (all first bytes,
then all second bytes, ...) so that the compressor sees the low-entropy exponent bytes together.
Everything else is stored raw. The whole payload is compressed with xz/lzma, whose CRC64 check
also catches a truncated or corrupt file. No pickle: loading executes nothing.
"""

from __future__ import annotations

import io
import json
import lzma
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.io import atomic_write_bytes

MAGIC = b"PRUNELAB-SPARSE1"
_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise PrunelabError(f"sparse file names an unknown dtype '{name}'")
    return dtype


def _bits(t: torch.Tensor) -> np.ndarray:
    """A float tensor's bit patterns as a flat signed-integer array (no copy of the values)."""
    return t.reshape(-1).view(_INT_OF_SIZE[t.element_size()]).numpy()


def _sparse_pays(t: torch.Tensor, n_zero: int) -> bool:
    size = t.element_size()
    sparse_bytes = (t.numel() - n_zero) * size + t.numel() / 8 + n_zero / 8
    return sparse_bytes < t.numel() * size


def encode_sparse(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The sparse file's bytes for `state_dict` (see the module docstring)."""
    entries, blobs = [], []
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        entry = {"name": name, "dtype": str(t.dtype), "shape": list(t.shape), "enc": "raw"}
        if t.is_floating_point() and t.element_size() in _INT_OF_SIZE and t.numel():
            bits = _bits(t)
            magnitude = bits & np.array(np.iinfo(bits.dtype).max, dtype=bits.dtype)
            zero = magnitude == 0
            n_zero = int(zero.sum())
            if _sparse_pays(t, n_zero):
                values = bits[~zero].view(np.uint8).reshape(-1, t.element_size())
                parts = [np.packbits(zero), np.packbits(bits[zero] < 0), values.T.copy()]
                entry.update(enc="sparse", n_zero=n_zero, lengths=[p.nbytes for p in parts])
                blobs += [p.tobytes() for p in parts]
                entries.append(entry)
                continue
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        entry["lengths"] = [len(raw)]
        blobs.append(raw)
        entries.append(entry)
    header = json.dumps({"version": 1, "tensors": entries}).encode()
    payload = struct.pack("<Q", len(header)) + header + b"".join(blobs)
    return MAGIC + lzma.compress(payload, preset=6)


def _decode_tensor(entry: dict, blobs: list[bytes]) -> torch.Tensor:
    dtype, shape = _dtype(entry["dtype"]), entry["shape"]
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    size = torch.empty((), dtype=dtype).element_size()
    if entry["enc"] == "raw":
        flat = torch.frombuffer(bytearray(blobs[0]), dtype=torch.uint8) if blobs[0] else None
        out = torch.empty(0, dtype=dtype) if flat is None else flat.view(dtype)
        return out.reshape(shape).clone()
    int_np = np.dtype(f"<i{size}")
    zero = np.unpackbits(np.frombuffer(blobs[0], np.uint8), count=numel).astype(bool)
    negative = np.unpackbits(np.frombuffer(blobs[1], np.uint8), count=entry["n_zero"])
    values = np.frombuffer(blobs[2], np.uint8).reshape(size, -1).T.copy().view(int_np).reshape(-1)
    bits = np.empty(numel, dtype=int_np)
    bits[~zero] = values
    bits[zero] = np.where(negative.astype(bool), np.iinfo(int_np).min, 0)
    return torch.from_numpy(bits).view(dtype).reshape(shape).clone()


def decode_sparse(data: bytes, source: str = "sparse file") -> OrderedDict[str, torch.Tensor]:
    """The state_dict stored in a sparse file's bytes."""
    if not data.startswith(MAGIC):
        raise PrunelabError(f"{source} is not a prunelab sparse file")
    try:
        payload = lzma.decompress(data[len(MAGIC) :])
        (n,) = struct.unpack_from("<Q", payload)
        header = json.loads(payload[8 : 8 + n])
        offset, state = 8 + n, OrderedDict()
        for entry in header["tensors"]:
            blobs = []
            for length in entry["lengths"]:
                blobs.append(payload[offset : offset + length])
                offset += length
            state[entry["name"]] = _decode_tensor(entry, blobs)
    except (lzma.LZMAError, struct.error, KeyError, ValueError) as err:
        raise PrunelabError(f"{source} is corrupt or truncated ({err})") from err
    return state


def save_sparse(state_dict: dict[str, torch.Tensor], path: str | Path) -> int:
    """Write `state_dict` as a lossless sparse file (atomically); returns its size in bytes."""
    data = encode_sparse(state_dict)
    atomic_write_bytes(path, lambda fh: fh.write(data))
    return len(data)


def load_sparse(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Read a file written by `save_sparse`: the same tensors, bit for bit."""
    return decode_sparse(Path(path).read_bytes(), str(path))


def dense_file_bytes(state_dict: dict[str, torch.Tensor]) -> int:
    """Bytes of `torch.save(state_dict)`: the dense file on disk."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
    return buffer.tell()


def size_metrics(net: nn.Module) -> dict[str, int]:
    """Parameter count, nonzero parameters, fp32 bytes in memory and the dense file's bytes."""
    params = list(net.parameters())
    return {
        "size/params": sum(p.numel() for p in params),
        "size/nonzero": sum(int(torch.count_nonzero(p)) for p in params),
        "size/dense_bytes": sum(p.numel() * 4 for p in params),
        "size/disk_bytes": dense_file_bytes(net.state_dict()),
    }
