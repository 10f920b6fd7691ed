"""The Einsum language: IR, affine indices, grammar and parser, semantic checks, the YAML form, functions and sizes."""
