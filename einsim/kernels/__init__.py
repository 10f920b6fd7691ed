"""Kernel front ends on the loop-tree engine: decode schedules (``decode``), fused
neighborhood attention (``fna``) and attention offloading (``lamina``).  Each evaluates loop
trees from ``mappings/`` (``tree_runs``); what remains as code here is a kernel's own choices
(FlashDecoding's split heuristic) and, for offloading, the projections, FFN and link exchange.
"""
