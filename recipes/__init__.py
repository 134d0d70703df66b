"""Scripts that train and measure the demonstration models (`python -m recipes.NAME`).

Not part of the installed package: they import `piti_cli` and each other, and nothing in
`piti_cli` imports them.
"""
