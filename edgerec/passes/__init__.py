"""Compiler passes: one file per pass, each a :class:`edgerec.passes.base.Pass` (``IR -> IR``,
options bound when it is built), run by :class:`edgerec.passes.manager.PassManager`.

| pass | file | what it does |
|---|---|---|
| ``DropColdItems`` | ``drop_cold.py`` | items with too few training interactions leave |
| ``PruneEncoderChannels`` | ``prune_channels.py`` | encoder output channels leave |
| ``PruneHead`` | ``prune_head.py`` | MLP head hidden neurons leave |
| ``FinetuneHead`` | ``finetune_head.py`` | BPR on the pruned head |
| ``PruneDims`` | ``prune.py`` | rotate (SVD), then truncate the width |
| ``Distill`` | ``distill.py`` | fine-tune the narrow tables toward the float model's ranking |
| ``Quantize`` | ``quantize.py`` | int8 / int4 / float16 tables |
| ``Guard`` | ``guard.py`` | refuse what lost more accuracy than the budget |

The lowering that comes before them (checkpoint -> IR) is :mod:`edgerec.lowering`.
"""
