"""ViT backbone of GRM: patch embedding, pre-norm blocks with adaptive token division.

Layout: tokens [B, N, C] with N = Nz template tokens followed by Nx search tokens (row-major
patch order). Parameter names mirror the official state_dict (see grm_jax/convert.py).
"""
from __future__ import annotations

import math
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from grm_jax import division

LAYER_NORM_EPS = 1e-6
PRETRAIN_IMAGE_SIZE = 224   # the official ViT is built for 224 inputs: pos_embed has 197 rows
dense_init = nn.initializers.truncated_normal(stddev=0.02, lower=-2.0 / 0.02, upper=2.0 / 0.02)


def pretrain_pos_embed_len(patch_size: int) -> int:
    """Rows of the (unused) pretrained `pos_embed`: (224 / patch)^2 patches + 1 cls row."""
    return (PRETRAIN_IMAGE_SIZE // patch_size) ** 2 + 1


def torch_conv_default_init(key, shape, dtype=jnp.float32):
    """PyTorch's default Conv2d weight init (kaiming_uniform a=sqrt(5)): U(+-1/sqrt(fan_in)).

    shape: HWIO kernel shape.
    """
    fan_in = int(np.prod(shape[:-1]))
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_conv_bias_init(fan_in: int):
    """PyTorch's default Conv2d bias init: U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: [B, H, W, 3] -> [B, (H/p)*(W/p), C] row-major."""
    patch_size: int
    embed_dim: int

    @nn.compact
    def __call__(self, images):
        p = self.patch_size
        x = nn.Conv(self.embed_dim, (p, p), strides=(p, p), padding='VALID', name='proj',
                    kernel_init=torch_conv_default_init,
                    bias_init=torch_conv_bias_init(3 * p * p))(images)
        b, h, w, c = x.shape
        return x.reshape(b, h * w, c)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm semantics: keep with prob 1-rate, scale by 1/(1-rate))."""
    rate: float

    @nn.compact
    def __call__(self, x, train: bool):
        if not train or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = jax.random.bernoulli(self.make_rng('dropout'), keep, shape)
        return x * mask.astype(x.dtype) / keep


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""
    hidden_dim: int

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = nn.Dense(self.hidden_dim, kernel_init=dense_init, name='fc1')(x)
        x = nn.gelu(x, approximate=False)
        return nn.Dense(c, kernel_init=dense_init, name='fc2')(x)


class Attention(nn.Module):
    """Multi-head self-attention with optional GRM token division.

    qkv Dense output layout = torch Linear's: [q | k | v] blocks of C, each head-major.
    With `divide`, a division MLP decides per search token whether it attends to the template,
    and the attention uses the eps-regularised masked softmax (grm_jax/division.py).
    """
    num_heads: int
    divide: bool
    division_hidden: tuple = (384, 192)

    @nn.compact
    def __call__(self, x, num_template: int, threshold, train: bool):
        """x: [B, N, C] LayerNorm-ed tokens. Returns (out [B, N, C], logprobs, decisions);
        logprobs [B, Nx, 2] and decisions [B, Nx] are None without division."""
        b, n, c = x.shape
        h = self.num_heads
        d = c // h
        qkv = nn.Dense(3 * c, kernel_init=dense_init, name='qkv')(x)
        qkv = qkv.reshape(b, n, 3, h, d).transpose(2, 0, 3, 1, 4)   # [3, B, H, N, D]
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = jnp.einsum('bhnd,bhmd->bhnm', q, k) * (d ** -0.5)
        logprobs = decisions = None
        if self.divide:
            logprobs = division.DivisionPredictor(self.division_hidden, name='divide_predict')(
                x, num_template)
            if train:
                onehot = division.gumbel_straight_through(self.make_rng('gumbel'), logprobs)
            else:
                onehot = division.inference_onehot(logprobs, threshold)
            mask = division.attention_mask(onehot, num_template)
            attn = division.masked_softmax_attention(logits, mask[:, None])
            decisions = onehot[..., 1]
        else:
            attn = jax.nn.softmax(logits, axis=-1)
        # attn is float32 (masked softmax); in v's dtype a bfloat16 network stays bfloat16
        out = jnp.einsum('bhnm,bhmd->bhnd', attn.astype(v.dtype), v)
        out = out.transpose(0, 2, 1, 3).reshape(b, n, c)
        out = nn.Dense(c, kernel_init=dense_init, name='proj')(out)
        return out, logprobs, decisions


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN1 x)); x + DropPath(MLP(LN2 x))."""
    num_heads: int
    mlp_ratio: float
    divide: bool
    division_hidden: tuple
    drop_path: float

    @nn.compact
    def __call__(self, x, num_template: int, threshold, train: bool):
        c = x.shape[-1]
        y = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name='norm1')(x)
        y, logprobs, decisions = Attention(self.num_heads, self.divide, self.division_hidden,
                                           name='attn')(y, num_template, threshold, train)
        x = x + DropPath(self.drop_path)(y, train)
        y = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name='norm2')(x)
        y = Mlp(int(c * self.mlp_ratio), name='mlp')(y)
        x = x + DropPath(self.drop_path)(y, train)
        return x, logprobs, decisions


class VisionTransformer(nn.Module):
    """GRM's ViT: separate template / search position embeddings, division in blocks >= 1.

    __call__(template [B, Ht, Wt, 3], search [B, Hs, Ws, 3]) -> (tokens [B, Nz+Nx, C] after the
    final LayerNorm, logprobs [L, B, Nx, 2], decisions [L, B, Nx]) with L = depth - 1.
    """
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    division_hidden: tuple
    drop_path_rate: float
    template_size: int
    search_size: int

    @nn.compact
    def __call__(self, template, search, threshold=0.0, train: bool = False):
        c = self.embed_dim
        p = self.patch_size
        num_z = (self.template_size // p) ** 2
        num_x = (self.search_size // p) ** 2
        # Kept so that official checkpoints round-trip; unused in the forward (as officially).
        self.param('cls_token', dense_init, (1, 1, c))
        self.param('pos_embed', dense_init, (1, pretrain_pos_embed_len(p), c))
        pos_z = self.param('pos_embed_z', dense_init, (1, num_z, c))
        pos_x = self.param('pos_embed_x', dense_init, (1, num_x, c))

        patch_embed = PatchEmbed(p, c, name='patch_embed')
        z = patch_embed(template)
        x = patch_embed(search)
        if z.shape[1] != num_z or x.shape[1] != num_x:
            raise ValueError(f'GRM backbone: template/search give {z.shape[1]}/{x.shape[1]} '
                             f'tokens, config expects {num_z}/{num_x} (sizes '
                             f'{self.template_size}/{self.search_size}, patch {p})')
        tokens = jnp.concatenate([z + pos_z, x + pos_x], axis=1)

        rates = np.linspace(0.0, self.drop_path_rate, self.depth)
        all_logprobs, all_decisions = [], []
        for i in range(self.depth):
            tokens, logprobs, decisions = Block(
                self.num_heads, self.mlp_ratio, divide=i > 0, division_hidden=self.division_hidden,
                drop_path=float(rates[i]), name=f'blocks_{i}')(tokens, num_z, threshold, train)
            if logprobs is not None:
                all_logprobs.append(logprobs)
                all_decisions.append(decisions)
        tokens = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name='norm')(tokens)
        return tokens, jnp.stack(all_logprobs), jnp.stack(all_decisions)
