"""SiamRPN++ (pysot) in JAX/Flax: ResNet-50 atrous backbone, neck, depthwise RPN, tracker.

Inference only: `model.SiamRPN`, `convert.from_official` (pysot model.pth -> Flax variables) and
`tracker.SiamRPNTracker` reproduce the official pysot numbers (see tests/test_siam_parity.py).
"""
