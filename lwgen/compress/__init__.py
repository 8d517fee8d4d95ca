"""Model compression: magnitude pruning (``pruning``), channel pruning (``structured``), fake
quantization for quantization-aware training (``fake_quant``), the trainer switch for a config's
``compress`` group (``setup``) and compression fine-tuning of a workdir (``finetune``).
"""
