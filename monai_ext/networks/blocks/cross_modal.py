"""Cross-modal blocks of RecLMIS: interaction attention, interest heads, conditioned reconstruction."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = [
    "masked_softmax",
    "sample_interest_mask",
    "CrossModalAttention",
    "InterestHead",
    "ConditionedAttention",
    "ConditionedReconstructionLayer",
    "ConditionedReconstructor",
]


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """
    Softmax over ``dim`` where entries with ``mask == False`` get probability 0.

    Args:
        logits: scores of any shape.
        mask: boolean tensor broadcastable to ``logits``, ``True`` for valid entries, or ``None``.
        dim: dimension of the softmax.

    Returns:
        probabilities with the shape of ``logits``.
    """
    if mask is None:
        return torch.softmax(logits, dim=dim)
    logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=dim).masked_fill(~mask, 0.0)


def sample_interest_mask(weights: torch.Tensor, ratio: float, valid: torch.Tensor | None = None) -> torch.Tensor:
    """
    Choose ``round(ratio * n_valid)`` tokens per row, sampled without replacement with
    probability ``weights`` (the patches / words of interest), as in RecLMIS CVR and CLR.

    Args:
        weights: non-negative sampling weights ``(B, N)``; not differentiated through.
        ratio: fraction of the valid tokens to choose, in ``[0, 1]``.
        valid: boolean ``(B, N)``, ``True`` for tokens that may be chosen (e.g. non-padded
            words), or ``None`` for all.

    Returns:
        boolean ``(B, N)``, ``True`` for chosen (to be masked) tokens.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}.")
    b, n = weights.shape
    chosen = torch.zeros(b, n, dtype=torch.bool, device=weights.device)
    if ratio == 0.0:
        return chosen
    w = weights.detach().float().clamp_min(1e-12)  # a valid token may underflow to 0 in the softmax
    if valid is None:
        k = max(1, int(round(ratio * n)))
        chosen.scatter_(1, torch.multinomial(w, k, replacement=False), True)
        return chosen
    w = w * valid
    counts = valid.sum(dim=1).tolist()
    for row, n_valid in enumerate(counts):
        k = min(int(n_valid), max(1, int(round(ratio * n_valid))))
        if k > 0:
            chosen[row, torch.multinomial(w[row], k, replacement=False)] = True
    return chosen


class CrossModalAttention(nn.Module):
    """
    One cross-attention layer (queries from one modality, keys/values from the other) with
    a residual connection and layer normalisation: ``LN(q + Dropout(MHA(q, c, c)))``.

    Used twice in the RecLMIS Conditioned Interaction module: text-to-vision (patches query
    the words, eq. 1 with the roles swapped, giving ``V'``) and vision-to-text (words query
    the patches, eq. 1, giving ``E'``).

    Args:
        embed_dim: feature dimension of both modalities.
        num_heads: number of attention heads.
        dropout: dropout of the attention weights and of the attention output.
    """

    def __init__(self, embed_dim: int, num_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            query: ``(B, Nq, D)``.
            context: ``(B, Nk, D)``.
            context_mask: boolean ``(B, Nk)``, ``True`` for valid context tokens, or ``None``.

        Returns:
            updated queries ``(B, Nq, D)``.
        """
        pad = None if context_mask is None else ~context_mask
        out, _ = self.attn(query, context, context, key_padding_mask=pad, need_weights=False)
        return self.norm(query + self.drop(out))


class InterestHead(nn.Module):
    """
    Token-of-interest weights (RecLMIS eq. 2-3): ``softmax(MLP(x))`` over the tokens, padded
    tokens excluded. Gives ``W_poi`` from ``V'`` and ``W_woi`` from ``E'``.

    Args:
        embed_dim: token feature dimension.
        hidden_dim: hidden width of the two-layer MLP; defaults to ``embed_dim // 4``.
    """

    def __init__(self, embed_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or max(1, embed_dim // 4)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            x: tokens ``(B, N, D)``.
            mask: boolean ``(B, N)``, ``True`` for valid tokens, or ``None``.

        Returns:
            weights ``(B, N)`` summing to one over the valid tokens.
        """
        return masked_softmax(self.mlp(x).squeeze(-1), mask, dim=-1)


class ConditionedAttention(nn.Module):
    """
    Multi-head cross-attention whose scores are conditioned on per-key weights (RecLMIS
    conditioned reconstructor, eq. 7 and 9): ``softmax(Q K^T / sqrt(d) (*) w) V``.

    Args:
        embed_dim: feature dimension.
        num_heads: number of heads.
        dropout: dropout of the attention probabilities.
        condition: ``"hadamard"`` multiplies the scores by the weights (the paper's eq. 7/9);
            ``"log"`` adds ``log(w)`` to them instead (re-weights the attention probabilities
            by ``w``).
    """

    def __init__(self, embed_dim: int, num_heads: int = 4, dropout: float = 0.0, condition: str = "hadamard") -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}).")
        if condition not in ("hadamard", "log"):
            raise ValueError(f"condition must be 'hadamard' or 'log', got {condition!r}.")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.condition = condition
        self.q = nn.Linear(embed_dim, embed_dim)
        self.kv = nn.Linear(embed_dim, 2 * embed_dim)
        self.out = nn.Linear(embed_dim, embed_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        weights: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            query: ``(B, Nq, D)``.
            context: ``(B, Nk, D)``.
            weights: conditioning weights ``(B, Nk)`` of the context tokens.
            context_mask: boolean ``(B, Nk)``, ``True`` for valid context tokens, or ``None``.

        Returns:
            ``(B, Nq, D)``.
        """
        b, nq, d = query.shape
        nk = context.shape[1]
        q = self.q(query).view(b, nq, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).view(b, nk, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, h, Nq, Nk)
        w = weights[:, None, None, :].to(scores.dtype)
        scores = scores * w if self.condition == "hadamard" else scores + torch.log(w.clamp_min(1e-12))
        mask = None if context_mask is None else context_mask[:, None, None, :]
        attn = self.drop(masked_softmax(scores, mask, dim=-1))
        return self.out((attn @ v).transpose(1, 2).reshape(b, nq, d))


class ConditionedReconstructionLayer(nn.Module):
    """
    A transformer layer of the conditioned reconstructor: conditioned cross-attention and a
    feed-forward network, each with a residual connection and post layer normalisation.

    Args:
        embed_dim: feature dimension.
        num_heads: number of heads.
        ffn_dim: hidden width of the feed-forward network.
        dropout: dropout rate.
        condition: see :class:`ConditionedAttention`.
    """

    def __init__(
        self, embed_dim: int, num_heads: int = 4, ffn_dim: int = 1024, dropout: float = 0.1, condition: str = "hadamard"
    ) -> None:
        super().__init__()
        self.attn = ConditionedAttention(embed_dim, num_heads, dropout, condition)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, embed_dim)
        )
        self.norm2 = nn.LayerNorm(embed_dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        weights: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            x: queries ``(B, Nq, D)``.
            context: ``(B, Nk, D)``.
            weights: conditioning weights ``(B, Nk)``.
            context_mask: boolean ``(B, Nk)`` of valid context tokens, or ``None``.

        Returns:
            ``(B, Nq, D)``.
        """
        x = self.norm1(x + self.drop(self.attn(x, context, weights, context_mask)))
        return self.norm2(x + self.drop(self.ffn(x)))


class ConditionedReconstructor(nn.Module):
    """
    Conditioned reconstructor ``Psi`` of RecLMIS (eq. 7 and 9): masked tokens of one modality
    (queries) are reconstructed from the full tokens of the other modality (keys/values),
    with the attention conditioned on that modality's tokens-of-interest weights.

    Args:
        embed_dim: feature dimension.
        num_layers: number of stacked :class:`ConditionedReconstructionLayer`.
        num_heads: number of heads.
        ffn_dim: hidden width of the feed-forward networks; defaults to ``2 * embed_dim``.
        dropout: dropout rate.
        condition: see :class:`ConditionedAttention`.
    """

    def __init__(
        self,
        embed_dim: int,
        num_layers: int = 3,
        num_heads: int = 4,
        ffn_dim: int | None = None,
        dropout: float = 0.1,
        condition: str = "hadamard",
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        ffn_dim = ffn_dim or 2 * embed_dim
        self.layers = nn.ModuleList(
            [
                ConditionedReconstructionLayer(embed_dim, num_heads, ffn_dim, dropout, condition)
                for _ in range(num_layers)
            ]
        )
        self.head = nn.Linear(embed_dim, embed_dim)

    def forward(
        self,
        masked: torch.Tensor,
        context: torch.Tensor,
        weights: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            masked: masked tokens ``(B, Nq, D)`` (masked rows set to zero).
            context: tokens of the other modality ``(B, Nk, D)``.
            weights: tokens-of-interest weights of the context ``(B, Nk)``.
            context_mask: boolean ``(B, Nk)`` of valid context tokens, or ``None``.
            query_pos: position encoding added to the queries, broadcastable to
                ``(B, Nq, D)``, or ``None``; it tells the reconstructor where a zeroed token sits.

        Returns:
            reconstructed tokens ``(B, Nq, D)``.
        """
        x = masked if query_pos is None else masked + query_pos
        for layer in self.layers:
            x = layer(x, context, weights, context_mask)
        return self.head(x)
