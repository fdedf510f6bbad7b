"""Warm-up configuration (EMOTIVOICE_WARMUP) and the plan both the server and `prime` run."""

from __future__ import annotations

import pytest

from emotivoice_server.warmup import (
    DEFAULT_PHRASES,
    DEFAULT_PROMPTS,
    WarmupConfigError,
    WarmupSpec,
    parse_warmup,
    plan,
)


def test_absent_or_blank_gives_defaults():
    assert parse_warmup(None) == WarmupSpec()
    assert parse_warmup("  ") == WarmupSpec()
    assert parse_warmup("{}").phrases == DEFAULT_PHRASES


def test_keys_override_defaults_independently():
    spec = parse_warmup('{"phrases": ["Hi."], "voices": ["b"]}')
    assert spec.phrases == ("Hi.",)
    assert spec.voices == ("b",)
    assert spec.prompts == DEFAULT_PROMPTS


def test_explicit_empty_phrases_disable_synthesis():
    assert plan(parse_warmup('{"phrases": []}'), ["a"]) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"phrase": ["x"]}', "unknown key(s) ['phrase']"),
        ('{"phrases": "Hello"}', "'phrases' must be a list of strings"),
        ('{"voices": [8051]}', "'voices' must be a list of strings"),
        ('{"phrases": ["ok", " "]}', "empty strings"),
    ],
)
def test_malformed_config_names_the_problem(text, fragment):
    with pytest.raises(WarmupConfigError) as info:
        parse_warmup(text, "EMOTIVOICE_WARMUP")
    assert fragment in str(info.value)
    assert "EMOTIVOICE_WARMUP" in str(info.value)


def test_plan_covers_every_phrase_voice_and_prompt_once_at_least():
    spec = WarmupSpec(phrases=("p1", "p2"), voices=("a", "b"), prompts=("", "Happy", "Sad"))
    items = plan(spec, ["a", "b", "c"])
    assert {(i.text, i.voice) for i in items} == {
        ("p1", "a"),
        ("p1", "b"),
        ("p2", "a"),
        ("p2", "b"),
    }
    assert {i.prompt for i in items} == {"", "Happy", "Sad"}
    assert len(items) == 4


def test_more_prompts_than_pairs_still_uses_every_prompt():
    spec = WarmupSpec(phrases=("p",), voices=(), prompts=("a", "b", "c"))
    items = plan(spec, ["s0", "s1"])
    assert [i.prompt for i in items] == ["a", "b", "c"]
    assert {i.voice for i in items} == {"s0"}  # no voices configured: the first speaker


def test_unknown_voice_is_a_config_error():
    with pytest.raises(WarmupConfigError) as info:
        plan(WarmupSpec(voices=("nope",)), ["a", "b"])
    assert "'nope'" in str(info.value)
    assert "voices" in str(info.value)


def test_default_phrases_cover_a_short_and_a_typical_sentence_in_one_piece_each():
    from emotivoice_server.pieces import MAX_PIECE_CHARS, bound_pieces

    longest = max(DEFAULT_PHRASES, key=len)
    assert bound_pieces([longest]) == [longest]
    assert 40 <= len(longest) <= MAX_PIECE_CHARS
    assert min(len(p) for p in DEFAULT_PHRASES) <= 10
    assert any("\u4e00" <= ch <= "\u9fa5" for p in DEFAULT_PHRASES for ch in p)
