"""Learn from the user's judgement: votes and corrections collected in a run become training data.

    record_correction(run, prompt, original, edited)   # "no, write it like this" -> RUN/corrections.jsonl
    collected = collect(run)                            # votes (RUN/votes.jsonl) + corrections
    collected.pairs      # preference pairs: prompt / chosen / rejected (ties left out)
    collected.examples   # corrected answers as supervised examples
    export_pairs(run, "pairs.jsonl")                    # the JSONL that TRL and mlx-lm-lora read

`localsft train --from RUN --preferences` trains the next version on them (localsft.train.preference).
"""

from localsft.feedback.judgements import (Collected, PreferencePair, collect, export_pairs, read_corrections,
                                          read_pairs_file, record_correction)

__all__ = ["Collected", "PreferencePair", "collect", "export_pairs", "read_corrections", "read_pairs_file",
           "record_correction"]
