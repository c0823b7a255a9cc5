"""thinksafe inside Inspect AI: its benchmarks as Inspect tasks and its judges as Inspect scorers.

Registered through the ``inspect_ai`` entry point (``pyproject.toml``), so with thinksafe installed::

    inspect eval thinksafe/harmbench_asr --model hf/local -M model_path=DIR -M do_sample=false -T limit=20
    inspect score LOG.eval --scorer thinksafe/judge -S metric=asr

Tasks (:mod:`thinksafe.inspect.tasks`): ``harmbench_asr``, ``strongreject_asr``, ``xstest_orr``,
``sensitive_orr``, ``gsm8k``, and ``thinksafe_eval`` for any registered benchmark. Each loads the
benchmark the way ``thinksafe eval`` does (``-T limit=N`` is the same seeded subset as a suite's
``limit``; ``-T seed``, ``-T data_path``), generates once, and scores with the suite's judge
(``-T judge=NAME`` for another). Scorers: ``judge`` (any registered judge, ``-S name=``,
``-S metric=asr|orr``) and ``answer_checker`` (the reasoning sets' checker). A sample's score is 1
where it counts toward the headline rate (ASR: carried out; ORR: refused; accuracy: correct), so the
mean is the rate; the outcome (``helped``, ``refused``, ``no_answer``, ``correct``, ``wrong``) is the
score's answer and the verdict its metadata. ``docs/inspect.md`` has both directions.
"""
