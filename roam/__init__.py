"""ROAM (Yang et al., CVPR 2020) in JAX: a resizable tracking model updated by a learned,
coordinate-wise LSTM optimizer.

Modules: `vgg` (frozen VGG-16 to relu4_3, stride 4), `crop` (the official search crop),
`model` (filters warped to the target's aspect, labels, anchors, losses), `optim` (the learned
optimizer as optax transformations, Meta-SGD first step, Random Filter Scaling), `convert`
(official ROAM state_dict, MatConvNet and torchvision VGG-16 -> pytrees). docs/roam.md.
"""
