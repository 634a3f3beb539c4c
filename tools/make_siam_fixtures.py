"""Golden fixtures for tests/test_siam_backbones.py, written from /work/shared/specs/siamrpn.md
(sections 1.2, 1.3, 2, 3) in plain PyTorch; pysot is NOT imported.

Builds, with random weights and random (calibrated, then perturbed) BatchNorm statistics:
  siam_alexlegacy.npz AlexNetLegacy (width 1/16) + single DepthwiseRPN, z 127 / x 287, batch 2,
                plus a backbone pass with layer4/layer5 BNs in train mode
  siam_up.npz     AlexNetLegacy (width 1/16) + UPChannelRPN, z 127 / x 255, batch 2
  siam_mobilev2.npz MobileNetV2 (width 1/8, layers 3/5/7) + AdjustAllLayer (8) + MultiRPN
                (unweighted), z 127 / x 255, batch 1
Each file holds the state_dict packed by `state_arrays` (conv weights stored as float16; the
model ran with exactly those values) and NCHW float32 outputs `out/<name>`. The inputs are not stored:
they are `pattern_images` (an integer hash, reproduced by the test).

Run (needs torch, not a dependency of this repository):
  python tools/make_siam_fixtures.py tests/data
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

A = 5


def pattern_images(batch, size, seed):
    """[batch, size, size, 3] float32 in 0..255 (integers) from a splitmix64-style hash."""
    i = np.arange(batch * size * size * 3, dtype=np.uint64)
    h = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(56)).astype(np.float32).reshape(batch, size, size, 3)


def to_torch(images):
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


# --- modules (spec sections 1.2, 1.3, 2, 3) ---------------------------------------------------
class AlexNetLegacy(nn.Module):
    def __init__(self, width):
        super().__init__()
        c = [3] + [int(x * width) for x in (96, 256, 384, 384, 256)]
        self.features = nn.Sequential(
            nn.Conv2d(c[0], c[1], 11, 2), nn.BatchNorm2d(c[1]), nn.MaxPool2d(3, 2), nn.ReLU(),
            nn.Conv2d(c[1], c[2], 5), nn.BatchNorm2d(c[2]), nn.MaxPool2d(3, 2), nn.ReLU(),
            nn.Conv2d(c[2], c[3], 3), nn.BatchNorm2d(c[3]), nn.ReLU(),
            nn.Conv2d(c[3], c[4], 3), nn.BatchNorm2d(c[4]), nn.ReLU(),
            nn.Conv2d(c[4], c[5], 3), nn.BatchNorm2d(c[5]))
        self.out_channels = c[5]

    def forward(self, x):
        return self.features(x)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, t, d):
        super().__init__()
        hidden = inp * t
        pad = d if d > 1 else 2 - stride
        self.res = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, stride, pad, dilation=d, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1, 1), (6, 24, 2, 2, 1), (6, 32, 3, 2, 1), (6, 64, 4, 1, 2),
                (6, 96, 3, 1, 2), (6, 160, 3, 1, 4), (6, 320, 1, 1, 4)]

    def __init__(self, width, used_layers=(3, 5, 7)):
        super().__init__()
        self.used_layers = used_layers
        cin = int(32 * width)
        self.layer0 = nn.Sequential(nn.Conv2d(3, cin, 3, 2, 0, bias=False),
                                    nn.BatchNorm2d(cin), nn.ReLU6())
        last_d = 1
        self.channels = [cin]
        for idx, (t, c, n, s, d) in enumerate(self.SETTINGS, start=1):
            cout = int(c * width)
            blocks = []
            for i in range(n):
                if i == 0:
                    blocks.append(InvertedResidual(cin, cout, s, t, d if d == last_d
                                                   else max(d // 2, 1)))
                else:
                    blocks.append(InvertedResidual(cin, cout, 1, t, d))
                cin = cout
            last_d = d
            self.channels.append(cout)
            setattr(self, f'layer{idx}', nn.Sequential(*blocks))

    def forward(self, x):
        outs = []
        for i in range(8):
            x = getattr(self, f'layer{i}')(x)
            outs.append(x)
        return [outs[i] for i in self.used_layers]


class AdjustLayer(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        x = self.downsample(x)
        if x.size(3) < 20:
            left = (x.size(3) - 7) // 2
            x = x[:, :, left:left + 7, left:left + 7]
        return x


class AdjustAllLayer(nn.Module):
    def __init__(self, cins, couts):
        super().__init__()
        self.num = len(cins)
        for i, (a, b) in enumerate(zip(cins, couts)):
            setattr(self, f'downsample{i + 2}', AdjustLayer(a, b))

    def forward(self, feats):
        return [getattr(self, f'downsample{i + 2}')(f) for i, f in enumerate(feats)]


def xcorr_depthwise(x, kernel):
    b, c = kernel.shape[:2]
    out = F.conv2d(x.reshape(1, b * c, x.size(2), x.size(3)),
                   kernel.reshape(b * c, 1, kernel.size(2), kernel.size(3)), groups=b * c)
    return out.reshape(b, c, out.size(2), out.size(3))


def xcorr_fast(x, kernel):
    b = kernel.size(0)
    pk = kernel.reshape(-1, x.size(1), kernel.size(2), kernel.size(3))
    out = F.conv2d(x.reshape(1, -1, x.size(2), x.size(3)), pk, groups=b)
    return out.reshape(b, -1, out.size(2), out.size(3))


class DepthwiseXCorr(nn.Module):
    def __init__(self, cin, hidden, cout):
        super().__init__()
        self.conv_kernel = nn.Sequential(nn.Conv2d(cin, hidden, 3, bias=False),
                                         nn.BatchNorm2d(hidden), nn.ReLU())
        self.conv_search = nn.Sequential(nn.Conv2d(cin, hidden, 3, bias=False),
                                         nn.BatchNorm2d(hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(hidden, hidden, 1, bias=False),
                                  nn.BatchNorm2d(hidden), nn.ReLU(), nn.Conv2d(hidden, cout, 1))

    def forward(self, z, x):
        return self.head(xcorr_depthwise(self.conv_search(x), self.conv_kernel(z)))


class DepthwiseRPN(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.cls = DepthwiseXCorr(channels, channels, 2 * A)
        self.loc = DepthwiseXCorr(channels, channels, 4 * A)

    def forward(self, z, x):
        return self.cls(z, x), self.loc(z, x)


class MultiRPN(nn.Module):   # unweighted: plain mean
    def __init__(self, channels):
        super().__init__()
        self.n = len(channels)
        for i, c in enumerate(channels):
            setattr(self, f'rpn{i + 2}', DepthwiseRPN(c))

    def forward(self, zs, xs):
        outs = [getattr(self, f'rpn{i + 2}')(z, x) for i, (z, x) in enumerate(zip(zs, xs))]
        return (sum(o[0] for o in outs) / self.n, sum(o[1] for o in outs) / self.n)


class UPChannelRPN(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.template_cls_conv = nn.Conv2d(c, c * 2 * A, 3)
        self.template_loc_conv = nn.Conv2d(c, c * 4 * A, 3)
        self.search_cls_conv = nn.Conv2d(c, c, 3)
        self.search_loc_conv = nn.Conv2d(c, c, 3)
        self.loc_adjust = nn.Conv2d(4 * A, 4 * A, 1)

    def forward(self, z, x):
        cls = xcorr_fast(self.search_cls_conv(x), self.template_cls_conv(z))
        loc = self.loc_adjust(xcorr_fast(self.search_loc_conv(x), self.template_loc_conv(z)))
        return cls, loc


class Model(nn.Module):
    def __init__(self, backbone, neck, rpn_head):
        super().__init__()
        self.backbone = backbone
        if neck is not None:
            self.neck = neck
        self.rpn_head = rpn_head

    def feats(self, img):
        f = self.backbone(img)
        return self.neck(f) if hasattr(self, 'neck') else f

    def forward(self, z, x):
        return self.rpn_head(self.feats(z), self.feats(x))


# --- weights ----------------------------------------------------------------------------------
def randomise(model, z, x, gen):
    """Conv weights rounded to float16 values; BN stats calibrated on (z, x) in train mode with
    momentum 1, then perturbed; BN affine random."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.half().float())
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=gen)
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 1.0
        model.train()
        model(z, x)
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                std = m.running_var.sqrt()
                m.running_mean.add_(0.3 * std * torch.randn(n, generator=gen))
                m.running_var.mul_(0.5 + 1.5 * torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.momentum = 0.1


def state_arrays(model):
    """The state_dict packed into four arrays (few zip entries keep the file small):
    sd_keys [N] str, sd_shapes [N] str ('16x3x11x11', '' for scalars), sd_half (4-D conv
    weights flattened in key order, float16, exact), sd_single (all other entries, float32)."""
    keys, shapes, half, single = [], [], [], []
    for k, v in model.state_dict().items():
        v = v.detach().numpy()
        keys.append(k)
        shapes.append('x'.join(str(n) for n in v.shape))
        if v.ndim == 4:
            h = v.astype(np.float16)
            assert np.array_equal(h.astype(np.float32), v), k
            half.append(h.ravel())
        else:
            single.append(v.astype(np.float32).ravel())
    return {'sd_keys': np.array(keys), 'sd_shapes': np.array(shapes),
            'sd_half': np.concatenate(half), 'sd_single': np.concatenate(single)}


def nchw(t):
    return t.detach().numpy().astype(np.float32)


def make_alex(out_dir, gen):
    z = to_torch(pattern_images(2, 127, 1))
    x = to_torch(pattern_images(2, 287, 2))
    backbone = AlexNetLegacy(1 / 16)
    model = Model(backbone, None, DepthwiseRPN(backbone.out_channels))
    randomise(model, z, x, gen)
    arrays = state_arrays(model)
    with torch.no_grad():
        zf = model.feats(z)
        cls, loc = model(z, x)
        # layer4/layer5 BatchNorms (features.12 and .15) in train mode, the rest eval.
        model.backbone.features[12].train()
        model.backbone.features[15].train()
        zf_train = model.backbone(z)
    arrays.update({'out/zf': nchw(zf), 'out/cls': nchw(cls), 'out/loc': nchw(loc),
                   'out/zf_train45': nchw(zf_train),
                   'out/layer5_running_mean': model.backbone.features[15].running_mean.numpy(),
                   'out/layer5_running_var': model.backbone.features[15].running_var.numpy()})
    np.savez_compressed(out_dir / 'siam_alexlegacy.npz', **arrays)


def make_up(out_dir, gen):
    z = to_torch(pattern_images(2, 127, 3))
    x = to_torch(pattern_images(2, 255, 4))
    backbone = AlexNetLegacy(1 / 16)
    model = Model(backbone, None, UPChannelRPN(backbone.out_channels))
    randomise(model, z, x, gen)
    arrays = state_arrays(model)
    with torch.no_grad():
        cls, loc = model(z, x)
    arrays.update({'out/cls': nchw(cls), 'out/loc': nchw(loc)})
    np.savez_compressed(out_dir / 'siam_up.npz', **arrays)


def make_mobilev2(out_dir, gen):
    z = to_torch(pattern_images(1, 127, 5))
    x = to_torch(pattern_images(1, 255, 6))
    backbone = MobileNetV2(0.125)
    chans = [backbone.channels[i] for i in backbone.used_layers]
    model = Model(backbone, AdjustAllLayer(chans, [8] * 3), MultiRPN([8] * 3))
    randomise(model, z, x, gen)
    arrays = state_arrays(model)
    with torch.no_grad():
        zb = model.backbone(z)
        zf = model.neck(zb)
        cls, loc = model(z, x)
    for i in range(3):
        arrays[f'out/zb{i}'] = nchw(zb[i])
        arrays[f'out/zf{i}'] = nchw(zf[i])
    arrays.update({'out/cls': nchw(cls), 'out/loc': nchw(loc)})
    np.savez_compressed(out_dir / 'siam_mobilev2.npz', **arrays)


def main():
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    make_alex(out_dir, gen)
    make_up(out_dir, gen)
    make_mobilev2(out_dir, gen)
    for p in sorted(out_dir.glob('siam_*.npz')):
        data = np.load(p)
        outs = {k: float(np.abs(data[k]).max()) for k in data.files if k.startswith('out/')}
        print(p.name, p.stat().st_size, 'bytes,', len(data['sd_keys']),
              'keys; max|out|', outs)


if __name__ == '__main__':
    main()
