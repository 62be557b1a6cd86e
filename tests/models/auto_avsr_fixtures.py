"""The auto_avsr golden fixtures (tests/fixtures/auto_avsr/, see its README.md): the reference's state
dicts rebuilt from their recipes with numpy, and the reference's inputs and outputs.

A recipe (``<kind>.recipe.json``) lists every tensor of a state dict in order: its key, shape, dtype, and
either a stored value (``keep``: BatchNorm step counts) or a ``shift`` and ``exponent``. Element j of a
generated tensor is ``shift + r * 2**-exponent``, with r in [-1, 1) drawn from splitmix64 seeded by the key's
CRC-32 and the recipe's ``global_seed``: exact in float32, so the rebuilt tensors equal the reference's
bit for bit. ``overrides`` then set single elements (flat index) to given values.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "auto_avsr"
KINDS = ("vsr", "asr", "avsr")
_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment and its two mixing multipliers
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def uniform(key: str, count: int, global_seed: int) -> np.ndarray:
    """``count`` numbers in [-1, 1) on a grid of 2**-19 (float64), the stream of ``key``."""
    seed = np.uint64((zlib.crc32(key.encode("utf-8")) << 32) | global_seed)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps around, as splitmix64 wants
        z = seed + np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z ^= z >> np.uint64(31)
    top_bits = (z >> np.uint64(44)).astype(np.float64)  # the 20 highest bits: 0 .. 2**20 - 1
    return top_bits / 2.0 ** 19 - 1.0


def _tensor(entry: dict, global_seed: int) -> torch.Tensor:
    dtype = getattr(torch, entry["dtype"])
    if entry.get("keep"):
        return torch.tensor(entry["value"], dtype=dtype).reshape(entry["shape"])
    count = int(np.prod(entry["shape"], dtype=np.int64))
    values = entry["shift"] + uniform(entry["key"], count, global_seed) * 2.0 ** -entry["exponent"]
    return torch.from_numpy(values.astype(np.float32).reshape(entry["shape"])).to(dtype)


def reference_state_dict(kind: str) -> dict[str, torch.Tensor]:
    """The reference's state dict of ``kind`` (vsr, asr: the model zoo's layout; avsr: v1.0.0's
    audio-visual layout), in its key order."""
    recipe = json.loads((FIXTURES / f"{kind}.recipe.json").read_text())
    state_dict = {entry["key"]: _tensor(entry, recipe["global_seed"]) for entry in recipe["tensors"]}
    for override in recipe["overrides"]:
        state_dict[override["key"]].view(-1)[override["index"]] = override["value"]
    return state_dict


def manifest() -> dict:
    """What each golden file is, the reduced sizes of each kind and the reference's beam-search results."""
    return json.loads((FIXTURES / "manifest.json").read_text())


def golden(kind: str, name: str) -> np.ndarray:
    """The golden array ``<kind>_<name>.npy``: a name of the manifest's ``files`` of ``kind`` (input,
    encoder_out, ...) or ``legacy_encoder_out`` (vsr, asr). avsr's video input is vsr's (identical bytes,
    stored once)."""
    if (kind, name) == ("avsr", "input_video"):
        kind, name = "vsr", "input"
    return np.load(FIXTURES / f"{kind}_{name}.npy")


def full_size_keys(name: str) -> list[tuple[str, list[int], str]]:
    """``(key, shape, dtype)`` of every tensor of a published-size model: ``name`` is vsr, asr (model
    zoo layout), v1_vsr, v1_asr or v1_avsr (v1.0.0)."""
    with gzip.open(FIXTURES / f"fullsize_{name}_keys.json.gz", "rt") as file:
        return [tuple(entry) for entry in json.load(file)["keys"]]


def random_full_size_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the zoo's keys and shapes at full size (:func:`full_size_keys`), filled with
    small random numbers (positive variances for BatchNorm, zero step counts)."""
    generator = torch.Generator().manual_seed(seed)
    state_dict = {}
    for key, shape, dtype in full_size_keys(name):
        if dtype == "int64":
            state_dict[key] = torch.zeros(shape, dtype=torch.long)
        elif key.endswith("running_var"):
            state_dict[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state_dict[key] = torch.randn(shape, generator=generator) * 0.02
    return state_dict
