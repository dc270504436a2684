"""Learned-optimizer jobs: task families, meta-training (TBPTT, ES, PES) and evaluation.

Run through `weightspace lopt meta-train|eval` or `python -m tasks.lopt.cli lopt ...`.
"""
