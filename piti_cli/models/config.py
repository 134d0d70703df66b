"""Typed model configs and the named presets behind every official checkpoint.

A preset is a frozen `ModelConfig`; it round-trips through a plain dict (`to_dict` /
`from_dict`) and is stored inside every checkpoint piti writes, so a file says what it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from piti_cli.data.kinds import CHANNELS as CONDITION_CHANNELS
from piti_cli.diffusion.schedules import SCHEDULES  # input kind -> encoder channels
from piti_cli.errors import PitiError

InputKind = Literal["mask", "sketch", "depth-normal"]


@dataclass(frozen=True)
class UNetConfig:
    """The GLIDE/ADM decoder. Defaults are GLIDE's 64×64 base model."""

    image_size: int = 64
    in_channels: int = 3  # 6 for the upsampler: x_t plus the upsampled low-res image
    model_channels: int = 192
    out_channels: int = 6  # ε and the variance interpolation v
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_head_channels: int = 64
    dropout: float = 0.1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    norm_groups: int = 32
    # Width of the condition tokens (GLIDE's text transformer / PITI's encoder).
    context_channels: int = 512
    super_res: bool = False
    # Departures for the tiny demo presets, off in every official preset (docs/demo-model.md):
    # a fixed position shared by image queries and condition keys (`piti_cli.models.grid`),
    # and whether the pooled condition vector enters the timestep embedding (GLIDE: yes).
    grid_attention: bool = False
    pooled_condition: bool = True

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4


@dataclass(frozen=True)
class EncoderConfig:
    """PITI's condition encoder: CNN stem → (size/16)² tokens + cls → transformer → LayerNorm."""

    in_channels: int = 3
    input_size: int = 256  # the condition enters at 256×256, also for the 64×64 base model
    stem_channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    width: int = 512
    layers: int = 8
    heads: int = 8

    @property
    def num_tokens(self) -> int:
        # The stem halves the resolution once per stride-2 conv (all stem stages after the first).
        return (self.input_size // 2 ** (len(self.stem_channels) - 1)) ** 2


@dataclass(frozen=True)
class TextConfig:
    """GLIDE's text transformer (only to read `base.pt`/`upsample.pt`; piti drops it)."""

    vocab_size: int = 50257
    context_length: int = 128
    width: int = 512
    layers: int = 16
    heads: int = 8


@dataclass(frozen=True)
class DiffusionConfig:
    """The training process. GLIDE's and PITI's models all learn the variance (the decoder's
    `out_channels` = 6 carries it) and see timesteps rescaled to 0..1000 (`network_t`); files
    written before 0.3 store those two facts as `learn_sigma` / `rescale_timesteps`: True, which
    reading accepts and drops (`LEGACY_DIFFUSION`)."""

    steps: int = 1000
    schedule: Literal["squaredcos_cap_v2", "linear"] = "squaredcos_cap_v2"


# keys older files store in their diffusion config, with the only value piti ever supported
LEGACY_DIFFUSION = {"learn_sigma": True, "rescale_timesteps": True}


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: Literal["piti", "glide"]
    unet: UNetConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    encoder: EncoderConfig | None = None  # PITI only
    text: TextConfig | None = None  # GLIDE only
    input_kind: InputKind | None = None  # PITI only

    def __post_init__(self) -> None:
        if self.family == "piti" and self.encoder is None:
            raise ValueError(f"preset {self.name}: a PITI model needs an encoder config")
        if self.family == "glide" and self.text is None:
            raise ValueError(f"preset {self.name}: a GLIDE model needs a text config")
        if self.encoder is not None and self.encoder.width != self.unet.context_channels:
            raise ValueError(f"preset {self.name}: encoder width must equal unet.context_channels")
        problem = _unet_problem(self.unet) or _diffusion_problem(self.diffusion) or _encoder_problem(self.encoder)
        if problem is None and self.text is not None and (self.text.width % self.text.heads or min(
                self.text.vocab_size, self.text.context_length, self.text.layers) < 1):
            problem = f"text width {self.text.width} with {self.text.heads} heads, or an empty vocabulary/context"
        if problem:
            raise ValueError(f"preset {self.name}: {problem}")

    @property
    def is_upsampler(self) -> bool:
        return self.unet.super_res

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        def build(kind, value):
            if value is None:
                return None
            fields = {f.name: f for f in dataclasses.fields(kind)}
            kwargs = {}
            for key, val in value.items():
                if key not in fields:
                    raise ValueError(f"unknown {kind.__name__} field {key!r}")
                kwargs[key] = tuple(val) if isinstance(val, list) else val
            return kind(**kwargs)

        return cls(
            name=data["name"],
            family=data["family"],
            unet=build(UNetConfig, data["unet"]),
            diffusion=build(DiffusionConfig, _legacy_diffusion(data.get("diffusion") or {})),
            encoder=build(EncoderConfig, data.get("encoder")),
            text=build(TextConfig, data.get("text")),
            input_kind=data.get("input_kind"),
        )


def _legacy_diffusion(value: dict[str, Any]) -> dict[str, Any]:
    """A stored diffusion config without the keys `LEGACY_DIFFUSION` names (their one value)."""
    for key, supported in LEGACY_DIFFUSION.items():
        if key in value and value[key] != supported:
            raise ValueError(f"diffusion {key}={value[key]!r}: piti's models need {supported}")
    return {k: v for k, v in value.items() if k not in LEGACY_DIFFUSION}


def _unet_problem(u: UNetConfig) -> str | None:
    """Why a decoder config cannot be built (None when it can): every width a multiple of the
    norm groups and, where attention runs, of the head width; the image halves evenly."""
    if min(u.image_size, u.in_channels, u.model_channels, u.out_channels, u.num_res_blocks, u.norm_groups,
           u.num_head_channels, u.context_channels) < 1 or not u.channel_mult:
        return "a size, width or count below 1"
    if u.image_size % 2 ** (len(u.channel_mult) - 1):
        return f"image_size {u.image_size} does not halve {len(u.channel_mult) - 1} times"
    for level, mult in enumerate(u.channel_mult):
        width = int(mult * u.model_channels)
        if width < 1 or width % u.norm_groups:
            return f"width {width} is not a multiple of norm_groups {u.norm_groups}"
        if u.image_size // 2 ** level in u.attention_resolutions and width % u.num_head_channels:
            return f"attention width {width} is not a multiple of num_head_channels {u.num_head_channels}"
    if not 0.0 <= u.dropout < 1.0:
        return f"dropout {u.dropout} outside [0, 1)"
    return None


def _diffusion_problem(d: DiffusionConfig) -> str | None:
    if d.schedule not in SCHEDULES:
        return f"unknown schedule {d.schedule!r} (known: {', '.join(SCHEDULES)})"
    if not isinstance(d.steps, int) or d.steps < 1:
        return f"diffusion steps {d.steps!r}: must be a positive integer"
    return None


def _encoder_problem(e: EncoderConfig | None) -> str | None:
    if e is None:
        return None
    if min(e.in_channels, e.width, e.layers, e.heads, e.input_size) < 1 or not e.stem_channels:
        return "an encoder size, width or count below 1"
    if e.width % e.heads:
        return f"encoder width {e.width} is not a multiple of its {e.heads} heads"
    if e.input_size % 2 ** (len(e.stem_channels) - 1):
        return f"encoder input_size {e.input_size} does not halve {len(e.stem_channels) - 1} times"
    return None


def _upsample_unet(**overrides) -> UNetConfig:
    base = dict(
        image_size=256,
        in_channels=6,
        channel_mult=(1, 1, 2, 2, 4, 4),
        num_res_blocks=2,
        super_res=True,
    )
    base.update(overrides)
    return UNetConfig(**base)


_LINEAR = DiffusionConfig(schedule="linear")


def _build_presets() -> dict[str, ModelConfig]:
    presets: dict[str, ModelConfig] = {
        "glide-base-64": ModelConfig("glide-base-64", "glide", UNetConfig(), text=TextConfig()),
        "glide-upsample-256": ModelConfig(
            "glide-upsample-256", "glide", _upsample_unet(), diffusion=_LINEAR, text=TextConfig()
        ),
    }
    for kind, channels in CONDITION_CHANNELS.items():
        encoder = EncoderConfig(in_channels=channels)
        presets[f"piti-base-{kind}"] = ModelConfig(
            f"piti-base-{kind}", "piti", UNetConfig(), encoder=encoder, input_kind=kind
        )
        presets[f"piti-upsample-{kind}"] = ModelConfig(
            f"piti-upsample-{kind}",
            "piti",
            _upsample_unet(),
            diffusion=_LINEAR,
            encoder=encoder,
            input_kind=kind,
        )

    # Small presets: the same architecture at a size that trains and tests on a CPU.
    tiny_unet = UNetConfig(
        model_channels=32,
        num_res_blocks=1,
        attention_resolutions=(16, 8),
        channel_mult=(1, 2, 2, 2),
        num_head_channels=32,
        dropout=0.0,
        norm_groups=8,
        context_channels=64,
    )
    tiny_text = TextConfig(vocab_size=100, context_length=16, width=64, layers=2, heads=2)
    tiny_up = dataclasses.replace(
        tiny_unet, image_size=256, in_channels=6, channel_mult=(1, 1, 2, 2, 2), super_res=True,
        attention_resolutions=(16,),
    )
    presets["glide-base-tiny"] = ModelConfig("glide-base-tiny", "glide", tiny_unet, text=tiny_text)
    presets["glide-upsample-tiny"] = ModelConfig(
        "glide-upsample-tiny", "glide", tiny_up, diffusion=_LINEAR, text=tiny_text
    )
    for kind, channels in CONDITION_CHANNELS.items():
        tiny_encoder = EncoderConfig(
            in_channels=channels, input_size=64, stem_channels=(8, 16, 32, 64, 64),
            width=64, layers=2, heads=2,
        )
        presets[f"piti-base-{kind}-tiny"] = ModelConfig(
            f"piti-base-{kind}-tiny", "piti", tiny_unet, encoder=tiny_encoder, input_kind=kind
        )
        presets[f"piti-upsample-{kind}-tiny"] = ModelConfig(
            f"piti-upsample-{kind}-tiny", "piti", tiny_up, diffusion=_LINEAR,
            encoder=tiny_encoder, input_kind=kind,
        )
    return presets


PRESETS: dict[str, ModelConfig] = _build_presets()

# Short aliases users type.
ALIASES = {
    "glide-base": "glide-base-64",
    "glide-upsample": "glide-upsample-256",
    "tiny": "piti-base-mask-tiny",
}


def get_preset(name: str) -> ModelConfig:
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise PitiError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[key]


def piti_from_glide(glide: ModelConfig, input_kind: str, encoder: EncoderConfig | None = None,
                    condition_size: int = 0) -> ModelConfig:
    """The PITI config that GLIDE→PITI initialisation produces: same decoder, new encoder.

    The encoder defaults to the one of the matching PITI preset (full or tiny size);
    `condition_size` > 0 changes the size its condition enters at (tokens: (size/16)²)."""
    if glide.family != "glide":
        raise ValueError(f"{glide.name} is not a GLIDE preset")
    if input_kind not in CONDITION_CHANNELS:
        raise ValueError(f"unknown input kind {input_kind!r}; choose one of {', '.join(CONDITION_CHANNELS)}")
    stage = "upsample" if glide.is_upsampler else "base"
    suffix = "-tiny" if glide.name.endswith("-tiny") else ""
    name = f"piti-{stage}-{input_kind}{suffix}"
    if encoder is None:
        template = PRESETS.get(name)
        encoder = template.encoder if template else EncoderConfig(in_channels=CONDITION_CHANNELS[input_kind])
    if condition_size:
        encoder = dataclasses.replace(encoder, input_size=condition_size)
    return ModelConfig(name, "piti", glide.unet, glide.diffusion, encoder=encoder, input_kind=input_kind)
