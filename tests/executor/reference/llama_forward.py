#!/usr/bin/python3
"""An independent forward pass of a Llama model (Hugging Face LlamaForCausalLM's formulas), in
NumPy float64, for checking Loom's executor: written from the published definition, sharing no
code with Loom.

    llama_forward.py MODEL.safetensors INPUT.json OUTPUT.json

MODEL holds Hugging Face Llama names and shapes (F32). INPUT.json: {"config": {"num_layers",
"num_attention_heads", "num_query_groups", "rotary_base", "norm_eps"}, "tokens": [[...]],
"targets": [[...]]}. OUTPUT.json: {"logits": [...] (batch·seq·vocab, row-major), "loss": mean
cross-entropy}.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        (header_bytes,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_bytes))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"]).astype(np.float64)
    return tensors


def rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rotary_tables(seq, head_dim, base):
    inverse_frequency = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(seq, dtype=np.float64), inverse_frequency)  # [seq, d/2]
    angles = np.concatenate([angles, angles], axis=-1)  # [seq, d], as HF's emb = cat(freqs, freqs)
    return np.cos(angles), np.sin(angles)


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(w, config, tokens):
    layers = config["num_layers"]
    heads = config["num_attention_heads"]
    groups = config["num_query_groups"]
    eps = config["norm_eps"]
    batch, seq = tokens.shape
    x = w["model.embed_tokens.weight"][tokens]  # [b, s, h]
    hidden = x.shape[-1]
    head_dim = hidden // heads
    cos, sin = rotary_tables(seq, head_dim, config["rotary_base"])
    mask = np.triu(np.full((seq, seq), -np.inf), k=1)
    for layer in range(layers):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(batch, seq, heads, head_dim).transpose(0, 2, 1, 3)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(batch, seq, groups, head_dim).transpose(0, 2, 1, 3)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(batch, seq, groups, head_dim).transpose(0, 2, 1, 3)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = np.repeat(k, heads // groups, axis=1)  # HF's repeat_kv
        v = np.repeat(v, heads // groups, axis=1)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probabilities = scores / scores.sum(axis=-1, keepdims=True)
        attention = (probabilities @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        x = x + attention @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T  # [b, s, vocab]


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    weights = read_safetensors(sys.argv[1])
    with open(sys.argv[2]) as f:
        request = json.load(f)
    tokens = np.array(request["tokens"], dtype=np.int64)
    targets = np.array(request["targets"], dtype=np.int64)
    logits = forward(weights, request["config"], tokens)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -np.take_along_axis(log_probabilities, targets[..., None], axis=-1).mean()
    with open(sys.argv[3], "w") as f:
        json.dump({"logits": logits.reshape(-1).tolist(), "loss": float(loss)}, f)


if __name__ == "__main__":
    main()
