"""End-to-end jobs (INR classification, merging, generalization prediction, learned optimizers) and benchmarks."""
