"""GRM (Generalized Relation Modeling, CVPR 2023) in JAX/Flax."""
