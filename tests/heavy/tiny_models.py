"""Tiny random models of the production architectures, built offline at test time.

They have the real classes, file formats and tokenizer conventions of the production models
(a cache-aware streaming FastConformer RNN-T saved as .nemo; a Phi3ForCausalLM with Phi-3's chat
markers saved with save_pretrained), so the backends load them through their real code paths.
Only the sizes and the weights are made up: what they say is gibberish.
"""

from __future__ import annotations

from pathlib import Path

# Phi-3-mini's chat template, as its tokenizer_config.json carries it.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI3_SPECIALS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]
CORPUS = [
    "hello how are you today",
    "what is the weather like",
    "the capital of france is paris",
    "I am a helpful voice assistant",
    "go forward ten meters",
]


def build_nemo_streaming_rnnt(out_dir: Path) -> Path:
    """A 2-layer cache-aware FastConformer RNN-T (BPE) like nemotron-speech-streaming, as .nemo."""
    import nemo.collections.asr as nemo_asr
    import sentencepiece as spm
    from omegaconf import OmegaConf

    tok_dir = out_dir / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    corpus = tok_dir / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 50))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(tok_dir / "tokenizer"),
        vocab_size=64,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    # NeMo's SentencePiece tokenizer directory holds tokenizer.model and a vocab.txt.
    pieces = [line.split("\t")[0] for line in (tok_dir / "tokenizer.vocab").read_text().splitlines()]
    (tok_dir / "vocab.txt").write_text("\n".join(pieces) + "\n")

    d = 64
    cfg = OmegaConf.create(
        {
            "sample_rate": 16000,
            "model_defaults": {"enc_hidden": d, "pred_hidden": d},
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": {
                "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                "sample_rate": 16000,
                "normalize": "NA",
                "window_size": 0.025,
                "window_stride": 0.01,
                "features": 80,
                "n_fft": 512,
                "frame_splicing": 1,
                "dither": 0.0,
                "pad_to": 0,
            },
            "encoder": {
                "_target_": "nemo.collections.asr.modules.ConformerEncoder",
                "feat_in": 80,
                "n_layers": 2,
                "d_model": d,
                "subsampling": "dw_striding",
                "subsampling_factor": 8,
                "subsampling_conv_channels": 32,
                "causal_downsampling": True,
                "ff_expansion_factor": 2,
                "self_attention_model": "rel_pos",
                "n_heads": 4,
                # The look-aheads nemotron-speech-streaming was trained for: 1120/560/160/80 ms.
                "att_context_size": [[70, 13], [70, 6], [70, 1], [70, 0]],
                "att_context_style": "chunked_limited",
                "xscaling": True,
                "conv_kernel_size": 9,
                "conv_norm_type": "layer_norm",
                "conv_context_size": "causal",
                "dropout": 0.0,
                "dropout_att": 0.0,
                "dropout_emb": 0.0,
                "dropout_pre_encoder": 0.0,
            },
            "decoder": {
                "_target_": "nemo.collections.asr.modules.RNNTDecoder",
                "normalization_mode": None,
                "random_state_sampling": False,
                "blank_as_pad": True,
                "prednet": {"pred_hidden": d, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.0},
            },
            "joint": {
                "_target_": "nemo.collections.asr.modules.RNNTJoint",
                "log_softmax": None,
                "preserve_memory": False,
                "fuse_loss_wer": False,
                "fused_batch_size": 4,
                "jointnet": {"joint_hidden": d, "activation": "relu", "dropout": 0.0},
            },
            "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}},
            "loss": {"loss_name": "default"},
            "train_ds": None,
            "validation_ds": None,
            "test_ds": None,
            "optim": None,
        }
    )
    import torch

    torch.manual_seed(0)
    model = nemo_asr.models.EncDecRNNTBPEModel(cfg=cfg)
    path = out_dir / "tiny_streaming_rnnt.nemo"
    model.save_to(str(path))
    return path


def _phi3_tokenizer(out_dir: Path) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS * 10,
        trainers.BpeTrainer(
            vocab_size=512,
            special_tokens=PHI3_SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    # As in Phi-3-mini: eos is <|endoftext|>, and <|end|> (which closes a turn) is not eos.
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
    )
    hf_tok.chat_template = PHI3_CHAT_TEMPLATE
    hf_tok.save_pretrained(out_dir)
    return hf_tok


def _phi3_config(tok: object) -> object:
    from transformers import Phi3Config

    return Phi3Config(
        vocab_size=len(tok),  # type: ignore[arg-type]
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        sliding_window=2047,
        bos_token_id=tok.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tok.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tok.pad_token_id,  # type: ignore[attr-defined]
        tie_word_embeddings=False,
    )


def build_phi3_random(out_dir: Path) -> Path:
    """A 2-layer Phi3ForCausalLM with random weights and a tokenizer with Phi-3's chat markers."""
    import torch
    from transformers import Phi3ForCausalLM

    tok = _phi3_tokenizer(out_dir)
    torch.manual_seed(0)
    Phi3ForCausalLM(_phi3_config(tok)).save_pretrained(out_dir)
    return out_dir


#: What the scripted model says, token by token, whatever it is asked.
SCRIPT_REPLY = ["hello", "Ġparis"]
#: What it would go on to say after <|end|> if generation did not stop there.
SCRIPT_AFTER_END = "Ġtoday"


def build_phi3_scripted(out_dir: Path) -> Path:
    """A Phi3ForCausalLM whose weights make it a fixed bigram machine: after any prompt it says
    "hello paris<|end|> today hello paris<|end|> ...". Its attention and MLP outputs are zero, so
    each position's state is its own token's embedding, and lm_head maps that to the next token.
    It shows that generation stops at <|end|> (which is not the tokenizer's eos) and that the
    reply is exactly the new tokens."""
    import torch
    from transformers import Phi3ForCausalLM

    tok = _phi3_tokenizer(out_dir)
    ids = tok.convert_tokens_to_ids([*SCRIPT_REPLY, "<|end|>", SCRIPT_AFTER_END])  # type: ignore[attr-defined]
    assert tok.unk_token_id not in ids, "the tiny tokenizer lacks a scripted token"  # type: ignore[attr-defined]
    first, second, end, after = ids
    model = Phi3ForCausalLM(_phi3_config(tok))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[:, 0] = 10.0  # every token not named below: state 0
        for dim, token in enumerate((first, second, end), start=1):
            emb[token, 0] = 0.0
            emb[token, dim] = 10.0
        head = model.lm_head.weight
        head.zero_()
        head[first, 0] = 10.0  # state 0 (anything else) -> "hello"
        head[second, 1] = 10.0  # "hello" -> " paris"
        head[end, 2] = 10.0  # " paris" -> <|end|>
        head[after, 3] = 10.0  # <|end|> -> " today" (only reached if generation goes on)
    model.save_pretrained(out_dir)
    return out_dir
