"""Prompts to send: the built-in set, or a user file (``.txt`` or ``.jsonl``).

The built-in set is deterministic and self-contained (no downloads): short questions, medium
instructions, and summarisation requests over passages of about 100 to 300 words assembled from
the paragraphs below, so request lengths vary the way a real chat workload's do.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from deploytune.loadgen.spec import LoadSpecError

__all__ = ["builtin_prompts", "load_prompts", "read_prompt_file"]

_QUESTIONS = (
    "What is the capital of Portugal?",
    "Why is the sky blue during the day but red at sunset?",
    "How many legs does a spider have?",
    "Explain in one sentence what a hash table is.",
    "What is the difference between weather and climate?",
    "Name three uses of copper.",
    "Why do cats purr?",
    "What does a compiler do?",
    "How long does light from the Sun take to reach the Earth?",
    "Give me a synonym for 'resilient'.",
    "Is a tomato a fruit or a vegetable, and why?",
    "What is the boiling point of water at the top of a high mountain, roughly?",
)

_INSTRUCTIONS = (
    "Write a short, friendly email to a colleague asking to move our Thursday meeting to "
    "Friday morning because a delivery is arriving at the office. Keep it under five "
    "sentences.",
    "List five practical tips for someone learning to cook at home for the first time, with "
    "one sentence of explanation for each tip.",
    "Explain to a ten-year-old how a bicycle stays upright while it is moving, using an "
    "everyday comparison they would understand.",
    "Write a haiku about a train station at night, then explain in two sentences which image "
    "you chose for each line and why.",
    "Compare a linked list and an array: describe how each stores its elements, which "
    "operations are fast or slow, and when you would choose one over the other.",
    "A small bakery sells 120 loaves on weekdays and 200 on Saturdays, and is closed on "
    "Sundays. Estimate how many loaves it sells in four weeks and show your reasoning step by "
    "step.",
    "Draft three possible names for a community garden project in a city neighbourhood, and "
    "give a one-line slogan for each.",
    "Describe the water cycle in a numbered list of steps, from evaporation over the ocean to "
    "water returning to the sea through rivers.",
)

_PARAGRAPHS = (
    "The lighthouse on the northern cape was built more than a century ago, when ships "
    "carrying timber and grain passed the rocks every week. Its keeper lived in a small stone "
    "house at the foot of the tower and climbed the spiral stairs each evening to light the "
    "lamp. In winter storms the waves reached the lower windows, and the keeper kept a "
    "logbook of every ship that passed, noting the wind, the visibility and the time.",
    "Modern lighthouses rarely need a keeper. An automatic lamp switches on at dusk, a battery "
    "charged by solar panels keeps it running through the night, and a radio beacon tells "
    "passing ships where they are even in thick fog. Many of the old keepers' houses have "
    "become small museums, where visitors read the logbooks and look at the brass lenses that "
    "once focused a flame into a beam visible for twenty miles.",
    "A city library decided last spring to stay open until midnight during the exam season. "
    "The staff expected a few dozen students; on the first night more than three hundred "
    "arrived, some with sleeping bags. The library added extra desks in the reading room, "
    "borrowed chairs from the town hall and asked a nearby bakery to sell coffee in the lobby, "
    "which turned out to be the most popular change of all.",
    "After the exam season the library surveyed its visitors. Most said they came for the "
    "quiet and the reliable internet rather than for the books, and many asked for more "
    "power sockets. The library now plans to keep late opening two nights a week all year, "
    "to run evening workshops on writing and budgeting, and to lend laptops to students who "
    "do not have one at home.",
    "Bees communicate the location of flowers through a movement known as the waggle dance. A "
    "forager returning to the hive walks in a figure-eight pattern on the comb, waggling its "
    "body during the straight part of the run. The angle of that run relative to vertical "
    "shows the direction of the food relative to the sun, and the length of the waggle tells "
    "the other bees how far they have to fly.",
    "Researchers who study the waggle dance have moved hives to unfamiliar landscapes and "
    "watched how quickly the bees adapt. Within a day the foragers map the new area, and the "
    "dances shift as some flowers fade and others bloom. The studies suggest that a colony "
    "behaves like a single decision maker, weighing many scouts' reports and committing its "
    "workers to the richest sources it knows.",
    "When a team moves a web service from one data centre to another, the hardest part is "
    "rarely the copying of data. It is finding every small assumption the old setup made: a "
    "hard-coded address in a configuration file, a firewall rule nobody remembers adding, a "
    "nightly job that expects a shared disk. Good teams write these down as they discover "
    "them and rehearse the move on a copy of the service first.",
    "On the day of the move itself, the team lowers the time-to-live of its DNS records in "
    "advance, keeps the old service running in read-only mode, and watches error rates and "
    "latency closely as traffic shifts. If anything looks wrong they switch back within "
    "minutes. The move is considered finished only after a full week without incidents, when "
    "the old machines are finally switched off.",
)

_SUMMARY_ASKS = (
    "Summarise the following passage in three sentences.",
    "Read the passage below and list its three most important facts.",
    "Write a one-paragraph summary of the following text for a busy reader.",
    "Summarise the passage below, then suggest a title for it.",
)


@cache
def _builtin() -> tuple[str, ...]:
    prompts: list[str] = list(_QUESTIONS) + list(_INSTRUCTIONS)
    n = len(_PARAGRAPHS)
    # 12 passages of 1 to 4 consecutive paragraphs (about 75 to 300 words), rotating through
    # the topics so neighbouring prompts differ.
    for i in range(12):
        length = 1 + i % 4
        start = (3 * i + i // 4) % n
        passage = "\n\n".join(_PARAGRAPHS[(start + k) % n] for k in range(length))
        prompts.append(f"{_SUMMARY_ASKS[i % len(_SUMMARY_ASKS)]}\n\n{passage}")
    return tuple(prompts)


def builtin_prompts() -> list[str]:
    """The 32 built-in prompts, always in the same order."""
    return list(_builtin())


def read_prompt_file(path: str | Path) -> list[str]:
    """The prompts of a ``.txt`` file (one per non-blank line) or a ``.jsonl`` file (one
    ``{"prompt": "..."}`` object per non-blank line).

    Raises:
        LoadSpecError: (field ``prompts``) the file is missing, unreadable, malformed or empty.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise LoadSpecError("prompts", f"{p}: expected a .txt or .jsonl file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadSpecError("prompts", f"cannot read prompt file {p}: {exc}") from None
    prompts: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if suffix == ".txt":
            prompts.append(line.strip())
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoadSpecError("prompts", f"{p}:{number}: not valid JSON ({exc.msg})") from None
        prompt = obj.get("prompt") if isinstance(obj, dict) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise LoadSpecError("prompts", f"{p}:{number}: expected an object with a non-empty "
                                           f"string \"prompt\", got {line.strip()[:80]!r}")
        prompts.append(prompt)
    if not prompts:
        raise LoadSpecError("prompts", f"{p}: the file holds no prompts")
    return prompts


def load_prompts(source: str) -> list[str]:
    """The prompts named by :attr:`LoadSpec.prompts`: ``"builtin"`` or a file path."""
    return builtin_prompts() if source == "builtin" else read_prompt_file(source)
