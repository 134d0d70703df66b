"""The example colour masks (shipped as `piti_examples`: what `piti sample` uses without --cond)."""
