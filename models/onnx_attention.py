"""Exporting a ViT image tower with ONNX Runtime's fused ``Attention`` operator.

``torch.onnx.export`` writes each ``nn.MultiheadAttention`` as ~40 small operators (reshapes,
transposes, gathers of the packed q/k/v projection, softmax, two batched matmuls). ONNX Runtime's CPU
kernels for the contrib operator ``com.microsoft::Attention`` do the q/k/v projection, the scaled
dot-product attention and the head layout in one node. For open_clip's ViT-B-32 on 2 cores that takes
the tower's operators from 2,091 to 373 and a batch of 32 ~2 % less time (bench/RESULTS.md, "Peers");
the vectors stay equal to the torch model's within float rounding (checked after every export by
:func:`pixseek.models.export.export`, which exports the plain graph instead when they are not).

Only self-attention blocks that the operator computes exactly are swapped: batch-first
``nn.MultiheadAttention`` with one packed in-projection and its bias, no extra key/value biases, called
with the same tensor as query, key and value and without a mask (open_clip's ViT image towers). Anything
else keeps its module and exports as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any


@cache
def _fused_module() -> type:
    """The module class standing in for a batch-first ``nn.MultiheadAttention`` used as self-attention
    without a mask (made on first use: torch is imported only by an export)."""
    import torch
    from torch import nn

    class Attention(torch.autograd.Function):
        """softmax(q k^T / sqrt(head size)) v over the packed projection ``x @ w + b``; exports as one node."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, heads: int) -> torch.Tensor:
            n, s, d = x.shape
            qkv = (x @ w + b).reshape(n, s, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            out = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            return out.transpose(1, 2).reshape(n, s, d)

        @staticmethod
        def symbolic(g: Any, x: Any, w: Any, b: Any, heads: int) -> Any:
            out = g.op("com.microsoft::Attention", x, w, b, num_heads_i=heads)
            out.setType(x.type())
            return out

    class FusedSelfAttention(nn.Module):
        def __init__(self, mha: nn.MultiheadAttention):
            super().__init__()
            self.heads = mha.num_heads
            self.w = nn.Parameter(mha.in_proj_weight.detach().t().contiguous(), requires_grad=False)
            self.b = nn.Parameter(mha.in_proj_bias.detach().clone(), requires_grad=False)
            self.out_proj = mha.out_proj

        def forward(
            self, query: Any, key: Any = None, value: Any = None, need_weights: bool = False, attn_mask: Any = None
        ) -> tuple[Any, None]:
            if attn_mask is not None or any(t is not None and t is not query for t in (key, value)):
                raise ValueError("fused attention is self-attention without a mask")
            return self.out_proj(Attention.apply(query, self.w, self.b, self.heads)), None

    return FusedSelfAttention


def fusable(mha: Any) -> bool:
    """Whether the fused operator computes exactly what this attention module does."""
    from torch import nn

    return (
        isinstance(mha, nn.MultiheadAttention)
        and mha.batch_first
        and mha._qkv_same_embed_dim
        and mha.in_proj_bias is not None
        and mha.bias_k is None
        and mha.bias_v is None
        and not mha.add_zero_attn
        and mha.embed_dim % mha.num_heads == 0
    )


@contextlib.contextmanager
def fused_attention(visual: Any) -> Iterator[int]:
    """Within the block, the self-attention of ``visual``'s transformer blocks is fused (yields how many
    were swapped; 0 for a tower without them, e.g. a convolutional one); the modules are put back after."""
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None) or []
    swapped = [(blk, blk.attn) for blk in blocks if fusable(getattr(blk, "attn", None))]
    try:
        for blk, mha in swapped:
            blk.attn = _fused_module()(mha)
        yield len(swapped)
    finally:
        for blk, mha in swapped:
            blk.attn = mha
