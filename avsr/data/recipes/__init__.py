"""Dataset recipes: ``avsr prepare {lrs2,lrs3,grid,lrw,vox2} ROOT OUT_DIR``. Each parses one public
dataset's published layout into utterances; :mod:`avsr.data.recipes.common` prepares them."""

from __future__ import annotations

from avsr.data.recipes.common import (Discovery, RecipeError, RecipeOptions, merge_shards, parse_shard,
                                      prepare_recipe)
from avsr.data.recipes.grid import SPLITS as GRID_SPLITS
from avsr.data.recipes.grid import discover_grid
from avsr.data.recipes.lrs import LRS2_SPLITS, LRS3_SPLITS, discover_lrs2, discover_lrs3
from avsr.data.recipes.lrw import SPLITS as LRW_SPLITS
from avsr.data.recipes.lrw import discover_lrw
from avsr.data.recipes.vox2 import SPLITS as VOX2_SPLITS
from avsr.data.recipes.vox2 import discover_vox2

# name -> (discover function, its splits, one-line description)
RECIPES = {
    "lrs2": (discover_lrs2, LRS2_SPLITS, "LRS2 (BBC): mvlrs_v1/main|pretrain + split lists"),
    "lrs3": (discover_lrs3, LRS3_SPLITS, "LRS3 (TED): pretrain|trainval|test folders"),
    "grid": (discover_grid, GRID_SPLITS, "GRID: s<N> folders of .mpg, .align alignments, .wav audio"),
    "lrw": (discover_lrw, LRW_SPLITS, "LRW: <WORD>/train|val|test/<WORD>_<nnnnn>.mp4|.txt"),
    "vox2": (discover_vox2, VOX2_SPLITS, "VoxCeleb2: dev|test/mp4/<id>/<video>/<nnnnn>.mp4 + a label CSV"),
}

__all__ = ["RECIPES", "Discovery", "RecipeError", "RecipeOptions", "merge_shards", "parse_shard", "prepare_recipe"]
