"""The Debian sound corpus: packages of game and desktop sounds (and sound fonts rendered note by note),
fetched, unpacked, inventoried, licensed, de-duplicated against the held-out splits and copied into one
corpus folder.

Modules, each importing only those above it:

* :mod:`.corpus` — inventory and manifest rows, reserved packages, splits, skip rules;
* :mod:`.fetch` — ``apt-get download`` and ``dpkg -x``;
* :mod:`.licences` — licence per clip from Debian ``copyright`` files;
* :mod:`.build` — the corpus builder (clips copied, or read from containers by a registered reader);
* :mod:`.scan` — inventory the clips of an unpacked package;
* :mod:`.duplicates` — fingerprints and cross-split duplicates;
* :mod:`.cli` — ``python -m training.data.debian``.

Importing this package imports none of them (so ``training.data.captions`` can depend on
:mod:`.corpus` while :mod:`.scan` depends on ``captions``).
"""
