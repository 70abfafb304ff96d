"""Prompts are versioned: changing a text without bumping its version fails here.

To change a prompt: edit it, bump `version`, and run
`PLAINSIGHT_UPDATE_SNAPSHOTS=1 pytest tests/test_prompts.py` to record the new fingerprint.
"""

import json
import os
from pathlib import Path

from plainsight import prompts

SNAPSHOT = Path(__file__).parent / "snapshots" / "prompts.json"


def current() -> dict:
    return {p.id: {"version": p.version, "fingerprint": p.fingerprint} for _, p in prompts.PROMPTS.items()}


def test_prompt_texts_match_their_versions():
    now = current()
    if os.environ.get("PLAINSIGHT_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    for pid, snap in recorded.items():
        assert pid in now, f"prompt {pid} disappeared; removing a prompt breaks baselines that used it"
        if now[pid]["version"] == snap["version"]:
            assert now[pid]["fingerprint"] == snap["fingerprint"], (
                f"prompt {pid} changed without a version bump (still v{snap['version']}); bump its version "
                "and update the snapshot (PLAINSIGHT_UPDATE_SNAPSHOTS=1)"
            )
        else:
            assert now[pid]["version"] > snap["version"], f"prompt {pid}: version went backwards"
    assert set(now) <= set(recorded), f"new prompts {set(now) - set(recorded)}: record them in the snapshot"


def test_blink_visual_correspondence_is_verbatim():
    p = prompts.get("blink.visual_correspondence")
    assert p.text.startswith("A point is circled on the first image, labeled with REF.")
    assert p.text.endswith("(A) Point A\n(B) Point B\n(C) Point C\n(D) Point D")
    assert p.key == "blink.visual_correspondence@v1"


def test_fingerprint_changes_with_text():
    p = prompts.get("blink.visual_correspondence")
    edited = prompts.Prompt(p.id, p.version, p.text + " ", p.options, p.source)
    assert edited.fingerprint != p.fingerprint
