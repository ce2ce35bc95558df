"""The adaptive octree and its interaction lists: Morton keys (:mod:`.morton`), the tree
(:mod:`.octree`), the U/V/W/X lists (:mod:`.lists`), queries of a built tree at new points
(:mod:`.queries`) and the stable integer sorts they use (:mod:`.sorting`). Knows nothing of
kernels."""

from .lists import InteractionLists, build_interaction_lists
from .octree import Octree, build_octree

__all__ = ["Octree", "build_octree", "InteractionLists", "build_interaction_lists"]
