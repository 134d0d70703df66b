"""Finetuning GLIDE into PITI: data stream, trainer, checkpoints, export (`piti finetune`)."""
