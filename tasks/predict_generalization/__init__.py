"""Generalization prediction: predict a classifier's test accuracy from its weights
(Unterthiner et al., 2020, *Predicting Neural Network Accuracy from Weights*).

    weightspace run predict-generalization                       # builds a CNN zoo on digits
    weightspace run predict-generalization --zoo DIR --models stats nfn_hnp gmn --seeds 0 1 2

Reports Kendall τ and R² on the zoo's test networks for each model.
"""
