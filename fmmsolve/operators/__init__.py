"""Translation operators of the KIFMM: surfaces, the precomputed Plan, and the compiled
translations that apply them. Depends on kernels and tree, never on the driver above."""
