"""Memory attention: current-frame features attend to the memories of past frames (SAM-2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.networks.blocks.position_encoding import sinusoidal_encoding_2d
from monai_ext.networks.blocks.sam_transformer import Attention

__all__ = ["MemoryAttentionLayer", "MemoryAttention"]


class MemoryAttentionLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to memory, and MLP (one SAM-2 memory-attention layer).

    Args:
        dim: channels of the current-frame tokens.
        memory_dim: channels of the memory tokens.
        num_heads: attention heads (SAM-2 uses 1).
        mlp_dim: MLP width.
        dropout: dropout on the residual branches.
    """

    def __init__(self, dim: int = 256, memory_dim: int = 64, num_heads: int = 1, mlp_dim: int = 1024, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.cross_attn = Attention(dim, num_heads, kv_in_dim=memory_dim)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        q = y + pos
        x = x + self.dropout(self.self_attn(q, q, y))
        y = self.norm2(x)
        x = x + self.dropout(self.cross_attn(y + pos, memory + memory_pos, memory))
        y = self.norm3(x)
        return x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(y)))))


class MemoryAttention(nn.Module):
    """A stack of :class:`MemoryAttentionLayer` with a final layer norm.

    Args:
        num_layers: layers (SAM-2: 4).
        dim, memory_dim, num_heads, mlp_dim, dropout: see :class:`MemoryAttentionLayer`.
    """

    def __init__(
        self, num_layers: int = 2, dim: int = 256, memory_dim: int = 64, num_heads: int = 1, mlp_dim: int = 1024, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.dim, self.memory_dim = dim, memory_dim
        self.layers = nn.ModuleList(MemoryAttentionLayer(dim, memory_dim, num_heads, mlp_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, features: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        """Condition ``features`` (B, C, h, w) on ``memory`` / ``memory_pos`` (B, M, memory_dim); same shape out."""
        b, c, h, w = features.shape
        pos = sinusoidal_encoding_2d(h, w, c, features.device).flatten(1).t()[None]
        x = features.flatten(2).transpose(1, 2) + 0.1 * pos  # SAM-2 adds a scaled encoding at the input
        for layer in self.layers:
            x = layer(x, pos, memory, memory_pos)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)
