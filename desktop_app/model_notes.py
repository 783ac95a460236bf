"""What a model is good and weak at, in a sound designer's words (no Qt).

The technical model card (recipe, metrics, licences) stays behind the Settings dialog's "Details"; these
notes are what a user needs to choose a model and to phrase queries. Numbers are the shipped model's
measurements on sound packages it never saw in training (its MODEL_CARD.md and benchmarks/RESULTS.md).
"""

from __future__ import annotations

from html import escape

NOTES: dict[str, dict[str, object]] = {
    "earshot-sfx-small": {
        "summary": (
            "A small, fast model for sound-effects libraries. It runs on any computer without a graphics "
            "card and indexes about an hour of audio per minute."
        ),
        "good": [
            "Game and interface sounds: explosions, impacts, metal clangs and hits, whooshes, "
            "notification chimes and beeps, clicks, footsteps, doors, water splashes.",
            "Short one-shots; on a long file it jumps to the best-matching 2-second stretch.",
            "“Find similar”: sound against sound works for any kind of sound, also those it cannot name.",
            "In Both mode it also reads what file names, folders and embedded metadata (BWF, iXML, UCS) mean "
            "— \u201ccattle\u201d finds cow_moo.wav — and trusts them only where they say something: on "
            "named libraries it had never heard that ranks the right files far higher (measured: mAP@16 "
            "0.66 with plain file names vs 0.15 by sound alone).",
        ],
        "weak": [
            "Animals, musical instruments, household objects, vehicles and real-world ambiences: it learned "
            "from game and desktop sounds, so these are found mostly by their file names.",
            "Negations, counts and order (“no music”, “two knocks”, “dog then cat”) are ignored.",
            "By sound alone, among 200 sounds it never heard, the best file is first for about 1 query in 11 "
            "and in the first ten for about 1 in 3: expect to audition a few results, or name your files.",
        ],
        "tip": "Describe the sound itself in a few words (“heavy wooden door creak”), use Keywords mode "
        "for names and catalogue terms, and “find similar” on a good hit to find its siblings.",
    },
}


def _key(name: str) -> str:
    return name.strip().lower()


def notes_html(name: str | None, description: str = "", trained: bool = True) -> str:
    """Rich text for the Settings dialog: a summary, "good at", "weak at" and a tip; a short generic text
    for a model without notes (its description, if any)."""
    if not name:
        return ""
    if not trained:
        return (
            f"<p><b>{escape(name)}</b> is an untrained placeholder: its results are not meaningful. "
            "Pick a trained model.</p>"
        )
    notes = NOTES.get(_key(name))
    if notes is None:
        text = escape(description) if description else "No plain-language notes come with this model."
        return f"<p>{text}</p><p>The technical details are under “Details”.</p>"
    items = "".join
    return (
        f"<p>{escape(str(notes['summary']))}</p>"
        f"<p><b>Good at</b></p><ul>{items(f'<li>{escape(x)}</li>' for x in notes['good'])}</ul>"
        f"<p><b>Weak at</b></p><ul>{items(f'<li>{escape(x)}</li>' for x in notes['weak'])}</ul>"
        f"<p><i>{escape(str(notes['tip']))}</i></p>"
    )
