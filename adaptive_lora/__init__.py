"""Adaptive LoRA: per-layer LoRA rank allocation under an exact trainable-parameter budget.

Pipeline (one module each): data -> models/spec (layers x modules x shapes) -> strategies (spec, budget) -> rank map
-> peft_config (LoraConfig with rank_pattern) -> train -> evaluate -> results (JSON) -> sweep/report -> figures -> paper.
"""
__version__ = "0.1.0"
