"""Tiny diffusers video pipelines with random weights, built from configs (no network), for the tests.

- :func:`tiny_text_to_video`: ``TextToVideoSDPipeline`` (UNet3D, 2-block AutoencoderKL with 2x downsampling,
  1-layer CLIP text model, a byte-level CLIP tokenizer whose ``vocab.json``/``merges.txt`` are written here).
  Latents ``(B, C, F, h, w)``; legacy ``callback(step, timestep, latents)`` hook.
- :func:`tiny_cogvideox`: ``CogVideoXPipeline`` (1-layer transformer, 4-block 3-D VAE with 8x spatial and 4x
  temporal compression, 1-layer T5 encoder, an in-memory word-level tokenizer). Latents ``(B, F, C, h, w)``;
  ``callback_on_step_end`` hook.

Each import of diffusers happens inside the builders, so this module imports without the extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def _byte_unicode() -> list[str]:
    """The printable stand-ins of the 256 bytes used by byte-level BPE (GPT-2/CLIP ``bytes_to_unicode``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_clip_tokenizer(folder: Path) -> Any:
    """A CLIP tokenizer over single bytes (no merges): ``vocab.json`` and ``merges.txt`` written to ``folder``."""
    from transformers import CLIPTokenizer

    chars = _byte_unicode()
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


def tiny_text_to_video(folder: Path) -> Any:
    """A ``TextToVideoSDPipeline`` with random weights; frames of 32x48 give latents ``(1, 4, F, 16, 24)``."""
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = write_clip_tokenizer(folder)
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        block_out_channels=(8, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=8, attention_head_dim=4, norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, sample_size=32, norm_num_groups=2,
    )
    vocab = tokenizer.get_vocab()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=1,
        vocab_size=len(vocab), hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=16, projection_dim=8,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    pipe = TextToVideoSDPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                 scheduler=scheduler)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()  # modules built from configs start in training mode (T5 dropout would draw noise)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_cogvideox() -> Any:
    """A ``CogVideoXPipeline`` with random weights; 9 frames of 64x64 give latents ``(1, 3, 4, 8, 8)``."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "cat", "walks", "on", "the", "beach"]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=8, num_layers=1, sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=8,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(words), d_model=8, d_kv=4, d_ff=16, num_layers=1,
                                           num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                             scheduler=CogVideoXDDIMScheduler())
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval()  # modules built from configs start in training mode (T5 dropout would draw noise)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def moving_latents(shape: tuple[int, int, int, int], *, layout: str, shift: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Initial latents whose frames are one smooth noise field translated by ``shift`` latent pixels per frame.

    Args:
        shape: ``(C, F, h, w)``.
        layout: ``"BCFHW"`` or ``"BFCHW"`` of the returned ``(1, ...)`` tensor.

    Returns:
        float32 latents of unit standard deviation, so the flow between frames is known (``shift`` in x).
    """
    from coherence.flow.ops import warp

    channels, frames, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    field = torch.randn(1, channels, h + 8, w + 8 + int(frames * abs(shift)) + 1, generator=gen)
    field = torch.nn.functional.avg_pool2d(field, 3, 1, 1)
    out = []
    for f in range(frames):
        flow = torch.zeros(1, 2, *field.shape[-2:])
        flow[:, 0] = shift * f
        out.append(warp(field, flow)[0, :, 4:4 + h, 4:4 + w])
    clip = torch.stack(out)  # (F, C, h, w)
    clip = clip / clip.std()
    return clip[None] if layout == "BFCHW" else clip.transpose(0, 1)[None]
