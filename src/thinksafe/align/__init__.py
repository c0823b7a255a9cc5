"""thinksafe.align: ThinkSafe alignment (arXiv 2601.23143).

Built so far: refusal-steering templates (:mod:`.templates`), self-generation of training
candidates from harmful and benign pools (:mod:`.generate`), judge filtering with a reason for
every drop (:mod:`.filter`) and the perplexity diagnostic (:mod:`.perplexity`; measured in
``docs/alignment.md``) and LoRA training with TRL's ``SFTTrainer`` (:mod:`.train`: the paper's
defaults, loss on the response only, trace kept). The baselines' recipes, the KL variant and the
``thinksafe align`` commands with their manifests are the rest of the alignment issue.
"""
