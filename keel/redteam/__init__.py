"""Red-team suite: attack and benign cases (`data/`) and a runner that scores a safety check
(`keel.redteam.runner`; run it with `python -m keel.redteam.runner`)."""
