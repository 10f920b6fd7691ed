"""GPU and device models still written as code: the dense FMHA baseline of the neighborhood
kernels (``flash_attention.fmha``), decode schedules (``decode``), fused neighborhood
attention (``fna``) and attention offloading (``lamina``).  FlashAttention-2/3 prefill are loop
trees (``mappings/flash-attention-*.yaml``) on the engine; the rest follow (issue 10).
"""
