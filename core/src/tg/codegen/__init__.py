"""Code generation: the micro-op IR, the builder that simplifies it, lowering of a scheduled kernel into micro-ops,
and the capability-driven rewrites that fit them to a target before its emitter renders them."""
