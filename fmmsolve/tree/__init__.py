"""The adaptive octree and its interaction lists: Morton keys (:mod:`.morton`), the tree
(:mod:`.octree`) and the U/V/W/X lists (:mod:`.lists`). Knows nothing of kernels."""

from .lists import InteractionLists, build_interaction_lists
from .octree import Octree, build_octree

__all__ = ["Octree", "build_octree", "InteractionLists", "build_interaction_lists"]
