"""Loading the released layout: strict keys, both weight-norm spellings, weights-only unpickling,
the serving files (written once, reused, rebuilt when stale), precisions, clear errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from emotivoice_tts import ModelLoadError, Synthesizer, convert_for_serving, load_synthesizer
from emotivoice_tts.convert import is_current, serving_path
from emotivoice_tts.layout import ModelLayout
from emotivoice_tts.vocoder import LEGACY_G, LEGACY_V, PARAM_G, PARAM_V

TEXT = "Hello world, 你好"


def generator_file(model_dir: Path) -> Path:
    return ModelLayout.discover(model_dir).generator_ckpt


def style_file(model_dir: Path) -> Path:
    return ModelLayout.discover(model_dir).style_ckpt


def rewrite(path: Path, entry: str, change) -> None:
    blob = torch.load(path, weights_only=True)
    blob[entry] = change(dict(blob[entry]))
    torch.save(blob, path)


def test_first_load_converts_and_second_load_reuses(model_copy: Path) -> None:
    first = load_synthesizer(model_copy, "fp32", "cpu")
    assert "read_released_weights" in first.load_timings
    for source in (generator_file(model_copy), style_file(model_copy)):
        assert is_current(source, "fp32")
    second = load_synthesizer(model_copy, "fp32", "cpu")
    assert "read_serving_weights" in second.load_timings
    assert "read_released_weights" not in second.load_timings
    # The same weights, bit for bit...
    for module in ("generator", "style"):
        a, b = getattr(first, module).state_dict(), getattr(second, module).state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{module}.{key}"
    # ...hence the same audio, up to the float noise of a CPU under load (oneDNN may split a
    # reduction differently from one call to the next: 6e-8 was seen).
    assert_same_audio(first.synthesize(TEXT, "8051"), second.synthesize(TEXT, "8051"))


def assert_same_audio(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_released_format_loads_the_checkpoints_and_writes_nothing(model_copy: Path) -> None:
    converted = load_synthesizer(model_copy, "fp32", "cpu")  # writes the serving files
    released = load_synthesizer(model_copy, "fp32", "cpu", load_format="released")
    assert "read_released_weights" in released.load_timings
    assert "read_serving_weights" not in released.load_timings
    assert_same_audio(converted.synthesize(TEXT, "8051"), released.synthesize(TEXT, "8051"))
    fresh = model_copy.parent / "fresh"
    fresh.mkdir()
    os.rename(model_copy, fresh / "model")
    for source in (generator_file(fresh / "model"), style_file(fresh / "model")):
        serving_path(source, "fp32").unlink()
    load_synthesizer(fresh / "model", "fp32", "cpu", load_format="released")
    assert not serving_path(generator_file(fresh / "model"), "fp32").exists()
    with pytest.raises(ValueError, match="load_format"):
        load_synthesizer(fresh / "model", "fp32", "cpu", load_format="onnx")


def test_changed_source_makes_serving_file_stale(model_copy: Path) -> None:
    load_synthesizer(model_copy, "fp32", "cpu")
    source = generator_file(model_copy)
    rewrite(source, "generator", lambda sd: {k: v * 0.5 for k, v in sd.items()})
    assert not is_current(source, "fp32")
    again = load_synthesizer(model_copy, "fp32", "cpu")
    assert "read_released_weights" in again.load_timings
    assert is_current(source, "fp32")


def test_truncated_serving_file_is_not_taken_for_complete(model_copy: Path) -> None:
    load_synthesizer(model_copy, "fp32", "cpu")
    source = generator_file(model_copy)
    target = serving_path(source, "fp32")
    target.write_bytes(target.read_bytes()[:1000])
    assert not is_current(source, "fp32")
    load_synthesizer(model_copy, "fp32", "cpu")
    assert is_current(source, "fp32")


def test_convert_for_serving_records_the_verified_checksum(model_copy: Path) -> None:
    rel = str(generator_file(model_copy).relative_to(model_copy))
    given = hashlib.sha256(b"as verified by the fetch step").hexdigest()
    written = convert_for_serving(model_copy, {rel: given}, precisions=["fp16", "bf16"])
    assert len(written) == 4  # two sources x two precisions
    with safe_open(str(serving_path(model_copy / rel, "fp16")), framework="pt") as fh:
        assert fh.metadata()["source_sha256"] == given
        assert fh.get_tensor("am.to_mel.weight").dtype == torch.float16
    style = style_file(model_copy)
    with safe_open(str(serving_path(style, "bf16")), framework="pt") as fh:
        computed = hashlib.sha256(style.read_bytes()).hexdigest()
        assert fh.metadata()["source_sha256"] == computed
    assert convert_for_serving(model_copy, precisions=["fp16", "bf16"]) == []  # all current
    leftovers = [p.name for p in model_copy.rglob("*.tmp")]
    assert leftovers == []


def test_unknown_precision_is_refused_before_any_work(model_copy: Path) -> None:
    with pytest.raises(ValueError, match="precision 'fp8'"):
        convert_for_serving(model_copy, precisions=["fp8"])
    with pytest.raises(ValueError, match="precision 'int4'"):
        load_synthesizer(model_copy, "int4", "cpu")


def test_both_weight_norm_spellings_load_the_same(model_copy: Path, synth: Synthesizer) -> None:
    """The release holds weight_g/weight_v; newer torch writes parametrizations.*.original0/1."""

    def to_param_names(sd: dict) -> dict:
        renamed = {}
        for k, v in sd.items():
            k = k.replace(LEGACY_G, PARAM_G) if k.endswith(LEGACY_G) else k
            k = k.replace(LEGACY_V, PARAM_V) if k.endswith(LEGACY_V) else k
            renamed[k] = v
        return renamed

    source = generator_file(model_copy)
    assert any(k.endswith(LEGACY_G) for k in torch.load(source, weights_only=True)["generator"])
    rewrite(source, "generator", to_param_names)
    other = load_synthesizer(model_copy, "fp32", "cpu")
    np.testing.assert_array_equal(other.synthesize(TEXT, "8051"), synth.synthesize(TEXT, "8051"))


def test_missing_and_unexpected_keys_are_listed(model_copy: Path) -> None:
    def damage(sd: dict) -> dict:
        sd.pop("am.to_mel.bias")
        sd["am.extra.weight"] = torch.zeros(1)
        return sd

    rewrite(generator_file(model_copy), "generator", damage)
    with pytest.raises(ModelLoadError) as info:
        load_synthesizer(model_copy, "fp32", "cpu")
    assert info.value.missing == ["am.to_mel.bias"]
    assert info.value.unexpected == ["am.extra.weight"]
    assert "am.to_mel.bias" in str(info.value) and "g_00140000" in str(info.value)


def test_style_checkpoint_without_bert_weights_is_refused(model_copy: Path) -> None:
    """Upstream's strict=False would keep random BERT weights here; we refuse."""
    rewrite(
        style_file(model_copy),
        "model",
        lambda sd: {k: v for k, v in sd.items() if not k.startswith("module.bert.encoder")},
    )
    with pytest.raises(ModelLoadError, match=r"missing keys \(\d+\): 'bert\.encoder"):
        load_synthesizer(model_copy, "fp32", "cpu")


def test_shape_mismatch_is_named(model_copy: Path) -> None:
    (model_copy / "data/youdao/text/speaker2").write_text("8051\n11614", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"am\.spk_tokenizer\.weight: file \(6, 32\)"):
        load_synthesizer(model_copy, "fp32", "cpu")


class Payload:
    """Not a tensor: unpickling it needs arbitrary code, which weights_only refuses."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_checkpoint_with_code_is_refused(model_copy: Path) -> None:
    path = generator_file(model_copy)
    torch.save({"generator": {"x": Payload()}}, path)
    with pytest.raises(ModelLoadError, match="cannot be read as weights"):
        load_synthesizer(model_copy, "fp32", "cpu")


def test_missing_files_are_named(model_copy: Path) -> None:
    (model_copy / "lexicon/librispeech-lexicon.txt").unlink()
    (model_copy / "WangZeJun/simbert-base-chinese/vocab.txt").unlink()
    with pytest.raises(ModelLoadError) as info:
        load_synthesizer(model_copy, "fp32", "cpu")
    assert set(info.value.missing) == {
        "lexicon/librispeech-lexicon.txt",
        "WangZeJun/simbert-base-chinese/vocab.txt",
    }


def test_no_checkpoint_is_named(model_copy: Path) -> None:
    generator_file(model_copy).rename(model_copy / "elsewhere")
    with pytest.raises(ModelLoadError, match=r"no checkpoint .*g_\?{8}"):
        load_synthesizer(model_copy, "fp32", "cpu")


def test_last_checkpoint_wins(model_copy: Path) -> None:
    """Like upstream: the lexicographically last g_ + 8 characters (a later training step)."""
    source = generator_file(model_copy)
    later = source.with_name("g_00150000")
    later.write_bytes(source.read_bytes())
    assert ModelLayout.discover(model_copy).generator_ckpt == later
    source.with_name("g_001600000").write_bytes(b"not matched: 9 characters")
    assert ModelLayout.discover(model_copy).generator_ckpt == later


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precisions(model_copy: Path, synth: Synthesizer, precision: str) -> None:
    half = load_synthesizer(model_copy, precision, "cpu")
    want = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert {p.dtype for p in half.generator.parameters()} == {want}
    assert {p.dtype for p in half.style.parameters()} == {want}
    assert half.precision == precision
    audio = half.synthesize(TEXT, "8051")
    reference = synth.synthesize(TEXT, "8051")
    assert audio.dtype == np.float32
    assert np.isfinite(audio).all()
    # Same durations (computed in float32) unless a value sits on a rounding edge: allow 2 frames.
    assert abs(len(audio) - len(reference)) <= 2 * 256


def test_speaker_list_and_sample_rate(synth: Synthesizer, small_model_dir: Path) -> None:
    listed = (small_model_dir / "data/youdao/text/speaker2").read_text().split("\n")
    assert synth.speakers == listed
    assert synth.sample_rate == 16000
    assert synth.device == "cpu"
