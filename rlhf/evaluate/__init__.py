"""Evaluation toolkit (docs/methods.md §5): prompt sets, generation, pairwise judging, statistics, reports.

Submodules are imported on demand so that `stats`, `ranking` and friends stay usable without torch.
"""
