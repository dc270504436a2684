"""INR editing: learn a map from an INR's weights to the weights of the INR of the
edited signal (dilation, blur, contrast), rendered and compared on the zoo's grid.

    weightspace run inr-edit --edit dilate --out runs/inr-edit     # train and compare editors
    weightspace edit --metanet runs/inr-edit/models/nfn_hnp_ff.safetensors in.safetensors --out out.safetensors

Modules: data (pairs and edits), models (editors), train (the render-loss loop),
run (the comparison), plots, cli.
"""
