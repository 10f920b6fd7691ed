"""Analyses of a cascade: dependency graph, passes per rank, op counts and footprint."""
