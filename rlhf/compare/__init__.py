"""Algorithms side by side (experiment=compare, docs/algorithms.md §5): the budget check that runs before a
comparison starts, and the report written over its finished arms."""
