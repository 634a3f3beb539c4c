"""SiamRPN++ (pysot) in JAX/Flax: ResNet-50 atrous backbone, neck, depthwise RPN, tracker.

Inference only: `model.SiamRPN`, `convert.from_official` (pysot model.pth -> Flax variables),
`tracker_fns(config)` (the tracker as pure jittable functions, `siam.functional`) and its
adapter `tracker.SiamRPNTracker` reproduce the official pysot numbers
(see tests/test_siam_parity.py).
"""


def tracker_fns(config, float64_state: bool = True):
    """SiamRPN++'s `tracking.api.TrackerFns(init, step)`; see `siam.functional.tracker_fns`."""
    from siam.functional import tracker_fns as make
    return make(config, float64_state)
