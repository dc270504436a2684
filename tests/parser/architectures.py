"""A catalog of small architectures with the permutation groups a parse should find.

Each `Arch` builds a seeded, small, eval-mode model and its example inputs, and
states `expected`: the sorted multiset of group sizes a *maximal* parse gives under
weightspace's symmetry model (see the comment above each builder for the reasoning):

- an axis is a row-major product of factors, each permuted by a group or fixed;
- hidden units of a layer are one group shared by every tensor that produces or
  consumes them (bias, norm parameters, BatchNorm running stats included);
- a residual stream is ONE group shared by everything reading/writing it, unless it
  reaches a model input/output (model inputs and outputs are fixed);
- attention: the `heads` factor is one group per attention layer (q, k, v, o); the
  head_dim factor is one group for q/k and one for v/o -- except when q, k, v come
  from one fused projection (GPT-2 `c_attn`, `nn.MultiheadAttention.in_proj_weight`):
  then the fused axis is `(3 fixed, heads, head_dim)` and q, k, v share ONE head_dim
  group; rotary embeddings freeze q/k head_dim;
- groups of size 1 are dropped; kernel taps, spatial axes, vocabulary, positions and
  classes are fixed; conv -> flatten -> linear gives the linear's in-axis factors
  (channels, h*w fixed); a grouped conv with g groups factors channels `(g, C/g)`: a
  size-g group permuting the conv groups and a within-group channel group shared by
  all groups (depthwise: one group of size C);
- RNN/GRU/LSTM: one hidden group per layer on both axes of the recurrent matrix and
  on the hidden factor of the stacked gate axis `(gates fixed, hidden)`.

Sign/scale extras are not counted. Every model is built so that no parameter is dead
(all vocabulary rows / positions / token types are used by the example inputs) and no
parameter is permutation-degenerate (norm weights/biases and BatchNorm statistics are
randomized), so a wrong group assignment changes the output.

`acceptable` lists other sorted size lists that are sound but smaller parses the
parser may legitimately settle for (documented in `notes`); tests accept them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Arch", "CATALOG", "by_name"]


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[[], tuple[nn.Module, tuple]]
    expected: list[int]
    notes: str = ""
    acceptable: tuple[tuple[int, ...], ...] = ()
    hf: bool = False  # needs transformers
    train_export: bool = True  # export also works (and is meaningful) in train mode

    def __repr__(self) -> str:  # short ids in pytest output
        return f"Arch({self.name})"


# ---------------------------------------------------------------------------- helpers
def _seeded(seed: int):
    """Decorator: run the builder under a forked, seeded global RNG; return eval model."""

    def deco(fn):
        def build():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model, inputs = fn()
                _break_degeneracy(model)
            return model.eval(), inputs

        build.__name__ = fn.__name__
        build.__doc__ = fn.__doc__
        return build

    return deco


@torch.no_grad()
def _break_degeneracy(model: nn.Module) -> None:
    """Randomize constant parameters and BatchNorm statistics.

    Default inits make LayerNorm/BatchNorm/RMSNorm weights all ones and biases all
    zeros (HF models also zero every Linear bias); a permutation of a constant vector is
    invisible, so a wrongly assigned group on those tensors would go unnoticed.
    """
    for name, p in model.named_parameters():
        if p.is_floating_point() and p.numel() > 1 and bool((p == p.reshape(-1)[0]).all()):
            p.add_(0.1 * torch.randn_like(p))
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b.copy_(0.1 * torch.randn_like(b))
        elif name.endswith("running_var"):
            b.copy_(torch.rand_like(b) + 0.5)


def _tokens(batch: int, seq: int, vocab: int) -> torch.Tensor:
    """Token ids using every vocabulary row at least once (needs batch*seq >= vocab)."""
    n = batch * seq
    assert n >= vocab, (n, vocab)
    ids = torch.cat([torch.arange(vocab), torch.randint(0, vocab, (n - vocab,))])
    return ids[torch.randperm(n)].reshape(batch, seq)


# ---------------------------------------------------------------------------- MLP / INR
class MLP(nn.Module):
    def __init__(self, sizes=(5, 7, 11, 13, 3)):
        super().__init__()
        self.fc1 = nn.Linear(sizes[0], sizes[1])
        self.fc2 = nn.Linear(sizes[1], sizes[2])
        self.fc3 = nn.Linear(sizes[2], sizes[3])
        self.out = nn.Linear(sizes[3], sizes[4])

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.gelu(self.fc2(x))
        x = torch.tanh(self.fc3(x))
        return self.out(x)


# 5 -> 7 -> 11 -> 13 -> 3: one group per hidden layer (input 5 and output 3 fixed).
@_seeded(0)
def build_mlp():
    return MLP(), (torch.randn(4, 5),)


class Siren(nn.Module):
    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = w0
        self.l1, self.l2, self.l3 = nn.Linear(2, 32), nn.Linear(32, 32), nn.Linear(32, 1)
        with torch.no_grad():
            self.l1.weight.uniform_(-1 / 2, 1 / 2)
            for layer in (self.l2, self.l3):
                bound = math.sqrt(6 / layer.in_features) / w0
                layer.weight.uniform_(-bound, bound)

    def forward(self, coords):
        x = torch.sin(self.w0 * self.l1(coords))
        x = torch.sin(self.w0 * self.l2(x))
        return self.l3(x)


# 2 -> 32 -> 32 -> 1 with sin(30x): two hidden groups of 32 (sizes fixed by the brief).
@_seeded(1)
def build_siren():
    return Siren(), (torch.rand(16, 2) * 2 - 1,)


# ---------------------------------------------------------------------------- CNNs
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.conv2, self.bn2 = nn.Conv2d(6, 10, 3, padding=1), nn.BatchNorm2d(10)
        self.fc1 = nn.Linear(10 * 4 * 4, 9)
        self.fc2 = nn.Linear(9, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.flatten(x, 1)  # (B, 10*4*4): fc1 in-axis = (channels 10, 16 fixed)
        return self.fc2(F.relu(self.fc1(x)))


# conv 3->6 (+BN) -> pool -> conv 6->10 (+BN) -> flatten -> 160->9 -> 9->4.
# Groups: conv1 channels 6 (conv1, bn1 incl. running stats, conv2 in), conv2 channels 10
# (conv2, bn2, fc1 in-axis factor (10, 16)), fc1 units 9. Image channels/classes fixed.
@_seeded(2)
def build_cnn_bn():
    return CNN(), (torch.randn(2, 3, 8, 8),)


class ResBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        # identity-shortcut block: 6 -> 10 -> 6, + x
        self.b1c1, self.b1n1 = nn.Conv2d(6, 10, 3, padding=1, bias=False), nn.BatchNorm2d(10)
        self.b1c2, self.b1n2 = nn.Conv2d(10, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6)
        # projection-shortcut block: 6 -> 7 -> 12 (stride 2), + BN(conv1x1(x))
        self.b2c1, self.b2n1 = nn.Conv2d(6, 7, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(7)
        self.b2c2, self.b2n2 = nn.Conv2d(7, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
        self.b2sc, self.b2sn = nn.Conv2d(6, 12, 1, stride=2, bias=False), nn.BatchNorm2d(12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        h = self.b1n2(self.b1c2(F.relu(self.b1n1(self.b1c1(x)))))
        x = F.relu(x + h)
        h = self.b2n2(self.b2c2(F.relu(self.b2n1(self.b2c1(x)))))
        x = F.relu(self.b2sn(self.b2sc(x)) + h)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


# Groups: stream-1 channels 6 (stem, stem_bn, b1c1 in, b1c2 out, b1n2, b2c1 in, b2sc in),
# block-1 inner 10, block-2 inner 7, stream-2 channels 12 (b2c2 out, b2n2, b2sc out,
# b2sn, head in).
@_seeded(3)
def build_resnet_blocks():
    return ResBlocks(), (torch.randn(2, 3, 8, 8),)


class DepthwiseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)  # weight (8, 1, 3, 3)
        self.dw_bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.relu(self.dw_bn(self.dw(x)))
        x = F.relu(self.pw(x))
        return self.head(x.mean(dim=(2, 3)))


# Depthwise: channel axis (8 groups, 1 per group): the group-permutation group has
# size 8 and links conv out, dw in/out, dw_bn, pw in; the within-group factor is size 1
# (dropped). Pointwise channels 12 (pw out, head in). -> [8, 12]
@_seeded(4)
def build_depthwise_conv():
    return DepthwiseNet(), (torch.randn(2, 3, 6, 6),)


class GroupedConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 10, 3, padding=1)
        self.gconv = nn.Conv2d(10, 14, 3, padding=1, groups=2)  # weight (14, 5, 3, 3)
        self.head = nn.Linear(14, 4)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.relu(self.gconv(x))
        return self.head(x.mean(dim=(2, 3)))


# groups=2: conv out 10 = (2, 5), gconv out 14 = (2, 7). One size-2 group permutes the
# conv groups (conv out factor 0, gconv out factor 0, gconv bias, head in factor 0);
# within-group groups: 5 (conv out factor 1, gconv weight axis 1) and 7 (gconv out
# factor 1, head in factor 1). -> [2, 5, 7]
@_seeded(5)
def build_grouped_conv():
    return GroupedConvNet(), (torch.randn(2, 3, 6, 6),)


# ---------------------------------------------------------------------------- transformers (hand-written)
class Attention(nn.Module):
    """Separate q/k/v/o projections; q/k head_dim (4) differs from v/o head_dim (5)."""

    def __init__(self, d: int, heads: int, dqk: int, dv: int):
        super().__init__()
        self.h, self.dqk, self.dv = heads, dqk, dv
        self.q = nn.Linear(d, heads * dqk)
        self.k = nn.Linear(d, heads * dqk, bias=False)  # a key bias is dead (softmax shift)
        self.v = nn.Linear(d, heads * dv)
        self.o = nn.Linear(heads * dv, d)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.h, self.dqk).transpose(1, 2)
        k = self.k(x).view(B, T, self.h, self.dqk).transpose(1, 2)
        v = self.v(x).view(B, T, self.h, self.dv).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.dqk), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.h * self.dv)
        return self.o(y)


class TransformerClassifier(nn.Module):
    def __init__(self, d_in=5, d=16, heads=3, dqk=4, dv=5, hidden=24, classes=3):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.ln1, self.attn = nn.LayerNorm(d), Attention(d, heads, dqk, dv)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.inp(x)
        x = x + self.attn(self.ln1(x))
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return self.head(self.lnf(x).mean(dim=1))


# Pre-LN block, residual stream 16 (inp out, ln1, q/k/v in, o out, ln2, fc1 in, fc2 out,
# lnf, head in) survives because the output is a class projection of the mean-pooled
# stream. Attention: heads 3 (q, k, v out factor 0, o in factor 0), q/k head_dim 4,
# v/o head_dim 5. MLP hidden 24. Tokens (T) and classes fixed. -> [3, 4, 5, 16, 24]
@_seeded(6)
def build_transformer_block():
    return TransformerClassifier(), (torch.randn(2, 6, 5),)


class MHAClassifier(nn.Module):
    def __init__(self, d_in=5, d=12, heads=3, hidden=20, classes=3):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.ln1 = nn.LayerNorm(d)
        self.mha = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.inp(x)
        h = self.ln1(x)
        x = x + self.mha(h, h, h, need_weights=False)[0]
        x = x + self.fc2(F.relu(self.fc1(self.ln2(x))))
        return self.head(self.lnf(x).mean(dim=1))


# nn.MultiheadAttention(12, 3 heads): fused in_proj_weight (36, 12) with out axis
# (3 fixed, heads 3, head_dim 4): q/k/v share ONE head_dim group (4), out_proj in-axis
# (heads 3, head_dim 4). Residual 12, MLP hidden 20. -> [3, 4, 12, 20]
@_seeded(7)
def build_mha_block():
    return MHAClassifier(), (torch.randn(2, 6, 5),)


class ManualRMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class RMSBlock(nn.Module):
    def __init__(self, norm: Callable[[int], nn.Module], d_in=5, d=14, hidden=22, classes=3):
        super().__init__()
        self.inp = nn.Linear(d_in, d)
        self.n1, self.fc1, self.fc2 = norm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.nf, self.head = norm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.inp(x)
        x = x + self.fc2(F.silu(self.fc1(self.n1(x))))
        return self.head(self.nf(x).mean(dim=1))


# Residual 14 (inp out, n1.weight, fc1 in, fc2 out, nf.weight, head in), MLP hidden 22.
@_seeded(8)
def build_rmsnorm_manual():
    return RMSBlock(ManualRMSNorm), (torch.randn(2, 6, 5),)


# Same with torch's nn.RMSNorm; sizes residual 13, hidden 9 -> [9, 13].
@_seeded(9)
def build_rmsnorm_torch():
    return RMSBlock(lambda d: nn.RMSNorm(d, eps=1e-6), d=13, hidden=9), (torch.randn(2, 6, 5),)


# ---------------------------------------------------------------------------- embeddings
class TiedLM(nn.Module):
    """Embedding -> residual MLP -> logits through a Linear sharing the embedding weight."""

    def __init__(self, vocab=19, d=12, hidden=20):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight  # tied: state_dict has both keys

    def forward(self, tokens):
        x = self.emb(tokens)
        x = x + self.fc2(F.relu(self.fc1(x)))
        return self.head(x)


# Embedding dim 12 is one group (emb axis 1 == head in axis, fc1 in, fc2 out); MLP 20.
# Vocabulary fixed (token ids in, logits out). head.weight is an alias of emb.weight.
@_seeded(10)
def build_tied_lm_linear():
    return TiedLM(), (_tokens(3, 8, 19),)


class TiedMatmulLM(nn.Module):
    """Embedding -> MLP -> LayerNorm -> logits = x @ emb.weight.T (one state-dict key)."""

    def __init__(self, vocab=23, d=14, hidden=9):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.ln = nn.LayerNorm(d)

    def forward(self, tokens):
        x = self.emb(tokens)
        x = x + self.fc2(F.gelu(self.fc1(x)))
        return self.ln(x) @ self.emb.weight.T


# Embedding dim 14 (emb axis 1, fc1 in, fc2 out, ln), MLP 9. -> [9, 14]
@_seeded(11)
def build_tied_lm_matmul():
    return TiedMatmulLM(), (_tokens(3, 8, 23),)


class PosEmbLM(nn.Module):
    """Token + learned positional embeddings (position ids in a non-persistent buffer)."""

    def __init__(self, vocab=17, max_pos=8, d=10, hidden=18):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_pos, d)
        self.register_buffer("pos_ids", torch.arange(max_pos), persistent=False)
        self.ln1, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos(self.pos_ids[:T])
        x = x + self.fc2(F.gelu(self.fc1(self.ln1(x))))
        return self.head(self.lnf(x))


# Stream 10 (tok axis 1, pos axis 1, ln1, fc1 in, fc2 out, lnf, head in), MLP 18.
# Positions (8 = seq len, so every row is used) and vocabulary fixed. -> [10, 18]
@_seeded(12)
def build_learned_pos_lm():
    return PosEmbLM(), (_tokens(3, 8, 17),)


# ---------------------------------------------------------------------------- recurrent
class RNNHead(nn.Module):
    def __init__(self, cell: str, d_in=4, hidden=9, classes=3):
        super().__init__()
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = cls(d_in, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


# 2-layer GRU, hidden 9: per layer one group on weight_hh_l{i} (both axes; axis 0 =
# (3 gates fixed, 9)), weight_ih_l{i} axis 0, both biases; layer-0 hidden also on
# weight_ih_l1 axis 1, layer-1 hidden on head in. -> [9, 9]
@_seeded(13)
def build_gru():
    return RNNHead("gru", hidden=9), (torch.randn(2, 5, 4),)


# 2-layer LSTM, hidden 7: as GRU with (4 gates fixed, 7). -> [7, 7]
@_seeded(14)
def build_lstm():
    return RNNHead("lstm", hidden=7), (torch.randn(2, 5, 4),)


class ElmanRNN(nn.Module):
    """h_t = tanh(W_ih x_t + b + W_hh h_{t-1}), unrolled in Python, MLP head on h_T."""

    def __init__(self, d_in=4, hidden=11, mid=6, classes=3):
        super().__init__()
        self.hidden = hidden
        self.w_ih = nn.Linear(d_in, hidden)
        self.w_hh = nn.Linear(hidden, hidden, bias=False)
        self.fc, self.out = nn.Linear(hidden, mid), nn.Linear(mid, classes)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(self.w_ih(x[:, t]) + self.w_hh(h))
        return self.out(F.relu(self.fc(h)))


# Hidden 11 (w_ih out + bias, w_hh both axes, fc in), head MLP 6. -> [6, 11]
@_seeded(15)
def build_elman_rnn():
    return ElmanRNN(), (torch.randn(2, 5, 4),)


# ---------------------------------------------------------------------------- transformers library
class LogitsOnly(nn.Module):
    """Call a `transformers` model with keyword args and return only `.logits`."""

    def __init__(self, model: nn.Module, input_names: tuple[str, ...], **call_kwargs):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.call_kwargs = call_kwargs

    def forward(self, *args):
        kwargs = dict(zip(self.input_names, args))
        return self.model(**kwargs, **self.call_kwargs, return_dict=True).logits


def _drop_bias(parent: nn.Module, attr: str) -> None:
    """Replace `parent.<attr>` (a Linear) by a bias-free copy.

    A separate key projection's bias only adds q.b_k, the same for every key, to each
    row of attention scores; softmax cancels it, so that bias is a dead parameter.
    """
    old = getattr(parent, attr)
    new = nn.Linear(old.in_features, old.out_features, bias=False)
    with torch.no_grad():
        new.weight.copy_(old.weight)
    setattr(parent, attr, new)


def _hf_init_range(cfg) -> None:
    # HF's default 0.02 std makes activations tiny; a larger one keeps every weight
    # visible in the outputs (the negative control needs it).
    cfg.initializer_range = 0.2


def _gpt2(attn: str):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=23, n_positions=8, n_embd=32, n_layer=2, n_head=4, n_inner=24,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
        bos_token_id=0, eos_token_id=0, attn_implementation=attn,
    )
    _hf_init_range(cfg)
    model = GPT2LMHeadModel(cfg)
    return LogitsOnly(model, ("input_ids",), use_cache=False), (_tokens(3, 8, 23),)


# GPT-2 LM head (lm_head tied to wte), d=32, 4 heads x 8, n_inner 24, 2 layers.
# Residual 32 survives (logits output; wte/wpe axis 1, ln_*, c_attn in (Conv1D weight is
# (in, out)!), attn c_proj out, c_fc in, mlp c_proj out, ln_f, lm_head in). Per layer:
# heads 4, fused-qkv head_dim 8 (c_attn out axis (3 fixed, 4, 8), attn.c_proj in
# (4, 8)), MLP 24. Positions (n_positions = seq len 8) and vocab fixed.
# -> [4, 4, 8, 8, 24, 24, 32]
@_seeded(16)
def build_hf_gpt2():
    return _gpt2("sdpa")


@_seeded(16)
def build_hf_gpt2_eager():
    return _gpt2("eager")


def _llama(attn: str, heads: int, kv_heads: int, hidden: int, head_dim: int, inter: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=29, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
        max_position_embeddings=16, tie_word_embeddings=False, attention_dropout=0.0,
        use_cache=False, attn_implementation=attn,
    )
    _hf_init_range(cfg)
    model = LlamaForCausalLM(cfg)
    return LogitsOnly(model, ("input_ids",), use_cache=False), (_tokens(3, 10, 29),)


# Llama, GQA: 6 query heads, 2 kv heads (n_rep 3), head_dim 8, hidden 48, MLP 40, rotary.
# Residual 48 (embed axis 1, every RMSNorm weight, q/k/v/gate/up in, o/down out, lm_head
# in; untied). Per layer: SwiGLU hidden 40 (gate out, up out, down in); kv-head group 2
# (q out factor 0 of (2, 3, 8), k/v out factor 0 of (2, 8), o in factor 0); n_rep
# group 3 (q out factor 1, o in factor 1: query heads sharing one kv head are
# interchangeable); v/o head_dim 8 (passes through repeat_kv's expand+reshape as the
# last axis). q/k head_dim frozen by rotary.
# -> maximal [2, 2, 3, 3, 8, 8, 40, 40, 48]
_LLAMA_GQA_NOTES = (
    "maximal parse splits the query-head axis (kv 2, n_rep 3); a parser that treats the "
    "expanded n_rep axis of repeat_kv as fixed loses the n_rep groups ([2,2,8,8,40,40,48]); "
    "one that also freezes what passes through expand+reshape loses v/o head_dim "
    "([2,2,40,40,48]). sdpa variant: transformers passes enable_gqa=True to SDPA "
    "(no repeat_kv ops) when no mask is needed; see report."
)
_LLAMA_GQA_ACCEPTABLE = ((2, 2, 8, 8, 40, 40, 48), (2, 2, 40, 40, 48))


@_seeded(17)
def build_hf_llama_gqa():
    return _llama("eager", heads=6, kv_heads=2, hidden=48, head_dim=8, inter=40)


@_seeded(17)
def build_hf_llama_gqa_sdpa():
    return _llama("sdpa", heads=6, kv_heads=2, hidden=48, head_dim=8, inter=40)


# Llama without GQA (4 heads = 4 kv heads, repeat_kv is a no-op), head_dim 8, hidden 32,
# MLP 24: per layer heads 4, v/o head_dim 8, MLP 24; residual 32; q/k head_dim frozen.
# -> [4, 4, 8, 8, 24, 24, 32]
@_seeded(18)
def build_hf_llama_mha():
    return _llama("sdpa", heads=4, kv_heads=4, hidden=32, head_dim=8, inter=24)


def _bert(attn: str):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=31, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=40, max_position_embeddings=8, type_vocab_size=2, num_labels=3,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, use_cache=False,
        attn_implementation=attn,
    )
    _hf_init_range(cfg)
    model = BertForSequenceClassification(cfg)
    for layer in model.bert.encoder.layer:
        _drop_bias(layer.attention.self, "key")
    ids = _tokens(4, 8, 31)
    types = (torch.arange(8) >= 4).long().expand(4, 8).contiguous()  # both token types used
    return LogitsOnly(model, ("input_ids", "token_type_ids")), (ids, types)


# BERT for sequence classification (post-LN), d=32, 4 heads x 8, intermediate 40.
# Residual 32 survives (the output is classifier(tanh(pooler(h[:, 0])))): word/position/
# token-type embeddings axis 1, embeddings.LayerNorm, q/k/v in, attention.output.dense
# out + LayerNorm, intermediate in, output.dense out + LayerNorm, pooler in. Pooler
# units: a second group of 32 (pooler out, classifier in). Per layer: heads 4, q/k
# head_dim 8, v/o head_dim 8 (separate q/k/v Linears), intermediate 40.
# -> [4, 4, 8, 8, 8, 8, 32, 32, 40, 40]
@_seeded(19)
def build_hf_bert_cls():
    return _bert("eager")


def _vit():
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(
        image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=40, num_labels=3, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, attn_implementation="sdpa",
    )
    _hf_init_range(cfg)
    model = ViTForImageClassification(cfg)
    for layer in model.vit.layers:
        _drop_bias(layer.attention, "k_proj")
    return LogitsOnly(model, ("pixel_values",)), (torch.randn(2, 3, 8, 8),)


# ViT classifier, 8x8 image, 4x4 patches (4 patches + CLS), d=32, 4 heads x 8, MLP 40.
# Residual 32 (patch conv out, cls_token, position_embeddings axis 2, layernorms, q/k/v
# in, attention.output.dense out, intermediate in, output.dense out, final layernorm,
# classifier in). Per layer: heads 4, q/k head_dim 8, v/o head_dim 8, MLP 40. Token
# positions and classes fixed. -> [4, 4, 8, 8, 8, 8, 32, 40, 40]
@_seeded(20)
def build_hf_vit_cls():
    return _vit()


def _resnet():
    from transformers import ResNetConfig, ResNetForImageClassification

    cfg = ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[12, 20], depths=[2, 1],
        layer_type="basic", hidden_act="relu", downsample_in_first_stage=False, num_labels=3,
    )
    model = ResNetForImageClassification(cfg)
    return LogitsOnly(model, ("pixel_values",)), (torch.randn(2, 3, 16, 16),)


# HF ResNet (basic layers), stem 8, stages [12 x2 layers, 20 x1 layer].
# Groups: stem channels 8 (embedder conv/BN, s0l0 first conv in + shortcut conv in);
# stage-0 layer-0 inner 12; stage-0 stream 12 (s0l0 second conv out + BN, s0l0 shortcut
# conv out + BN, s0l1 in/out, s1l0 first conv in + shortcut in); stage-0 layer-1 inner
# 12 (identity shortcut); stage-1 layer-0 inner 20; stage-1 stream 20 (s1l0 out,
# shortcut out, classifier in). -> [8, 12, 12, 12, 20, 20]
@_seeded(21)
def build_hf_resnet():
    return _resnet()


# ---------------------------------------------------------------------------- catalog
CATALOG: list[Arch] = [
    Arch("mlp", build_mlp, [7, 11, 13]),
    Arch("siren", build_siren, [32, 32], notes="sin(30x) after each hidden layer"),
    Arch("cnn_bn", build_cnn_bn, [6, 9, 10], notes="BN running stats share the channel group; flatten -> linear"),
    Arch("resnet_blocks", build_resnet_blocks, [6, 7, 10, 12], notes="identity and 1x1-conv+BN shortcuts"),
    Arch("depthwise_conv", build_depthwise_conv, [8, 12], notes="depthwise (groups=C) conv + BN"),
    Arch("grouped_conv", build_grouped_conv, [2, 5, 7], notes="groups=2: (g, C/g) factoring"),
    Arch("transformer_block", build_transformer_block, [3, 4, 5, 16, 24],
         notes="separate q/k/v/o; q/k head_dim 4 != v/o head_dim 5"),
    Arch("mha_block", build_mha_block, [3, 4, 12, 20], notes="nn.MultiheadAttention (fused in_proj)"),
    Arch("rmsnorm_manual", build_rmsnorm_manual, [14, 22], notes="pow/mean/rsqrt RMSNorm"),
    Arch("rmsnorm_torch", build_rmsnorm_torch, [9, 13], notes="nn.RMSNorm"),
    Arch("tied_lm_linear", build_tied_lm_linear, [12, 20], notes="head.weight is emb.weight (alias key)"),
    Arch("tied_lm_matmul", build_tied_lm_matmul, [9, 14], notes="logits = x @ emb.weight.T"),
    Arch("learned_pos_lm", build_learned_pos_lm, [10, 18], notes="non-persistent pos_ids buffer"),
    Arch("gru", build_gru, [9, 9], notes="nn.GRU, 2 layers"),
    Arch("lstm", build_lstm, [7, 7], notes="nn.LSTM, 2 layers"),
    Arch("elman_rnn", build_elman_rnn, [6, 11], notes="Python-unrolled tanh RNN cell"),
    Arch("hf_gpt2", build_hf_gpt2, [4, 4, 8, 8, 24, 24, 32], hf=True, notes="sdpa attention; tied lm_head"),
    Arch("hf_gpt2_eager", build_hf_gpt2_eager, [4, 4, 8, 8, 24, 24, 32], hf=True, notes="eager attention"),
    Arch("hf_llama_gqa", build_hf_llama_gqa, [2, 2, 3, 3, 8, 8, 40, 40, 48], hf=True,
         notes="eager attention (explicit repeat_kv); " + _LLAMA_GQA_NOTES, acceptable=_LLAMA_GQA_ACCEPTABLE),
    Arch("hf_llama_gqa_sdpa", build_hf_llama_gqa_sdpa, [2, 2, 3, 3, 8, 8, 40, 40, 48], hf=True,
         notes="sdpa attention; " + _LLAMA_GQA_NOTES, acceptable=_LLAMA_GQA_ACCEPTABLE),
    Arch("hf_llama_mha", build_hf_llama_mha, [4, 4, 8, 8, 24, 24, 32], hf=True,
         notes="no GQA: rotary only"),
    Arch("hf_bert_cls", build_hf_bert_cls, [4, 4, 8, 8, 8, 8, 32, 32, 40, 40], hf=True,
         notes="eager attention; pooler adds a second 32 group"),
    Arch("hf_vit_cls", build_hf_vit_cls, [4, 4, 8, 8, 8, 8, 32, 40, 40], hf=True, notes="sdpa attention"),
    Arch("hf_resnet", build_hf_resnet, [8, 12, 12, 12, 20, 20], hf=True, notes="basic layers, depths [2, 1]"),
]


def by_name(name: str) -> Arch:
    for a in CATALOG:
        if a.name == name:
            return a
    raise KeyError(name)
