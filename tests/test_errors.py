import re

import pytest
import torch
from hypothesis import given, strategies as st

from piti_cli.errors import CheckpointError, brief, one_line
from piti_cli.metrics import networks


@given(st.text(st.sampled_from("ab .\n`"), max_size=600), st.integers(20, 300))
def test_brief_is_one_line_within_its_limit_and_a_prefix_of_the_message(text, limit):
    out, whole = brief(text, limit), one_line(text)
    assert "\n" not in out and len(out) <= limit + 2
    if len(whole) <= limit:
        assert out == whole
    else:
        assert whole.startswith(out.removesuffix(" …"))


def test_brief_ends_a_torch_message_at_a_sentence_not_at_torch_dot_load():
    message = ("Weights only load failed. This file can still be loaded, to do so you have two options, do those "
               "steps only if you trust the source of the checkpoint. (1) In PyTorch 2.6, we changed the default "
               "value of the `weights_only` argument in `torch.load` from `False` to `True`. Re-running "
               "`torch.load` with `weights_only` set to `False` will likely succeed")
    out = brief(message)
    assert out.endswith("the source of the checkpoint") and "`torch" not in out


class _NotATensor:  # a pickled object weights_only refuses
    pass


def test_a_pickle_that_needs_code_is_named_in_whole_words(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"layer": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as err:
        networks.load_state_dict(path)
    message = str(err.value)
    assert message.startswith(f"{path}: refused: the file needs pickle code execution to load")
    assert "_NotATensor" in message and not re.search(r"`torch\.?\)$", message)
