"""The built-in prompt set and user prompt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploytune.loadgen import LoadSpecError, builtin_prompts, load_prompts, read_prompt_file


def test_builtin_prompts_are_32_varied_and_deterministic() -> None:
    prompts = builtin_prompts()
    assert len(prompts) == 32
    assert len(set(prompts)) == 32
    assert prompts == builtin_prompts() == load_prompts("builtin")
    words = sorted(len(p.split()) for p in prompts)
    assert words[0] < 10  # short questions ...
    assert 250 <= words[-1] <= 350  # ... up to ~300-word passages to summarise
    assert sum(1 for w in words if 40 <= w < 250) >= 5


def test_builtin_prompts_are_a_copy() -> None:
    builtin_prompts().clear()
    assert len(builtin_prompts()) == 32


def test_txt_file_one_prompt_per_nonblank_line(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("first prompt\n\n  second prompt  \n")
    assert read_prompt_file(path) == ["first prompt", "second prompt"]
    assert load_prompts(str(path)) == ["first prompt", "second prompt"]


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "one", "id": 1}\n\n{"prompt": "two\\nlines"}\n')
    assert read_prompt_file(path) == ["one", "two\nlines"]


@pytest.mark.parametrize(("name", "text", "words"), [
    ("missing.txt", None, "cannot read prompt file"),
    ("empty.txt", "\n  \n", "holds no prompts"),
    ("bad.jsonl", '{"prompt": "ok"}\nnot json\n', "bad.jsonl:2: not valid JSON"),
    ("nokey.jsonl", '{"text": "x"}\n', "nokey.jsonl:1: expected an object"),
    ("p.csv", "a,b\n", "expected a .txt or .jsonl file"),
])
def test_bad_prompt_files(tmp_path: Path, name: str, text: str | None, words: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(LoadSpecError, match="prompts: ") as info:
        read_prompt_file(path)
    assert info.value.field == "prompts"
    assert words in str(info.value)
