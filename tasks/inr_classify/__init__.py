"""INR classification: train weight-space models on an INR zoo and compare them.

    weightspace run inr-classify                  # digits INR zoo, default comparison
    weightspace run inr-classify --zoo DIR --models flat_mlp stats unf --seeds 0 1 2
"""
