"""`piti app`: a local web app over the Python API (`piti_cli.api`) — draw or upload a condition,
see the pictures, edit in place. Built on Gradio, an optional extra (`pip install "piti[app]"`),
imported only in `build_app`, so the rest of this module (the mask snapping, the palette, the
time left) is plain code the tests call directly.

One job runs at a time (a queue in front of the model: generate and edit share it); a job
streams its stage, step and time left with a preview of x̂₀, and can be stopped between steps.
Every picture is written as `piti sample` writes it (PNG, settings in its `piti` text chunk)
into a folder of its own under the app's output folder, for download.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from piti_cli.data.palettes import class_names, coco_stuff_palette
from piti_cli.data.scenes import COCO_IDS

# brushes: the demo's four classes first, then every COCO-Stuff class by name
BRUSH_CLASSES = tuple(dict.fromkeys(list(COCO_IDS) + list(range(182))))
SKETCH_BRUSHES = {"edge (white)": (255, 255, 255), "erase (black)": (0, 0, 0)}
MIN_AREA = 16  # pixels of a palette colour that make it one of the mask's classes (not an anti-aliased edge)
PREVIEW_EVERY = 1.0  # seconds between previews sent to the page


def class_colour(coco_id: int) -> tuple[int, int, int]:
    """The COCO-Stuff colour-mask colour of class `coco_id` (what `piti prep masks` writes)."""
    return tuple(int(c) for c in coco_stuff_palette()[coco_id])


def brush_choices() -> list[tuple[str, int]]:
    """(label, COCO-Stuff id) for the class menu: the demo's classes first."""
    names = class_names("coco-stuff")
    return [(f"{names[i]}{' (demo)' if i in COCO_IDS else ''}", i) for i in BRUSH_CLASSES]


def hex_colour(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def snap_mask(rgb: np.ndarray) -> np.ndarray:
    """A drawn mask (H, W, 3 or 4) uint8 → a valid colour mask: every pixel takes the nearest of
    the COCO-Stuff colours the picture holds on ≥ `MIN_AREA` pixels (brush strokes are
    anti-aliased; their blended edge pixels are no class). Black (unlabeled) counts as a colour."""
    rgb = np.ascontiguousarray(np.asarray(rgb)[..., :3], dtype=np.uint8)
    palette = np.concatenate([coco_stuff_palette()[:182], np.zeros((1, 3), np.uint8)])
    codes = (rgb.astype(np.int64) << np.array([16, 8, 0])).sum(-1)
    present, counts = np.unique(codes, return_counts=True)
    pal_codes = (palette.astype(np.int64) << np.array([16, 8, 0])).sum(-1)
    used = palette[np.isin(pal_codes, present[counts >= MIN_AREA])]
    if len(used) == 0:
        raise ValueError("the mask holds no class colour; draw with the class brushes")
    d = ((rgb[..., None, :].astype(np.int64) - used[None, None].astype(np.int64)) ** 2).sum(-1)
    return used[d.argmin(-1)]


def snap_sketch(rgb: np.ndarray) -> np.ndarray:
    """A drawn sketch → white edges on black (grey level > 127 is an edge), as `prep hed` writes."""
    grey = np.asarray(rgb)[..., :3].astype(np.float64).mean(-1)
    return np.where(grey > 127, 255, 0).astype(np.uint8)


@dataclass
class Clock:
    """Seconds per step for each stage, measured while sampling; the time left of a job."""

    rates: dict[str, float] = field(default_factory=dict)  # kept across jobs: the first upsampler estimate
    now: Callable[[], float] = time.monotonic
    _last: float | None = None

    def start(self) -> None:
        self._last = self.now()

    def tick(self, stage: str) -> None:
        """One step of `stage` is done: its measured rate (a running mean over recent steps)."""
        now = self.now()
        spent, self._last = now - (self._last if self._last is not None else now), now
        old = self.rates.get(stage)
        self.rates[stage] = spent if old is None else 0.7 * old + 0.3 * spent

    def left(self, todo: dict[str, int]) -> float | None:
        """Seconds for `todo` steps per stage; None while a stage with steps left has no rate."""
        if any(n and stage not in self.rates for stage, n in todo.items()):
            return None
        return sum(n * self.rates[stage] for stage, n in todo.items() if n)


def describe(stage: str, step: int, total: int, left: float | None) -> str:
    """The status line of a running job."""
    when = "estimating the time left" if left is None else f"about {left:.0f} s left"
    return f"**{stage}** step {step}/{total} · {when}"


def stream(run: Callable[[Callable[[Any], None], Callable[[], bool]], Any]) -> Iterator[tuple[str, Any]]:
    """Run `run(callback, cancel)` in a thread and yield ("step", info) for each callback, then
    ("done", result) or ("error", exception). Closing the iterator (the page's Stop, a closed
    tab) makes `cancel()` true, so the job stops at its next step."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            events.put(("done", run(lambda info: events.put(("step", info)), stop.is_set)))
        except BaseException as err:  # handed to the caller, who decides what the page shows
            events.put(("error", err))

    threading.Thread(target=work, daemon=True, name="piti-app-job").start()
    try:
        while True:
            kind, value = events.get()
            yield kind, value
            if kind != "step":
                return
    finally:
        stop.set()


def build_app(out_dir: Path, base: str | None = None, upsampler: str | None = None, device: str = "auto",
              precision: str = "auto", weights_dir: str | None = None, steps: int = 50, upsample_start: int = 300,
              guidance: float = 8.0):
    """The Gradio Blocks of `piti app` (not launched). `base` / `upsampler`: the pair loaded
    first (default: the bundled demo); pictures are written under `out_dir`; `steps`,
    `upsample_start` and `guidance` are the page's first settings (the README command's)."""
    import gradio as gr
    from PIL import Image

    from piti_cli.api import Cancelled, PitiPipeline, read_condition, sketch_from_photo
    from piti_cli.choices import SAMPLERS
    from piti_cli.data.images import save_png
    from piti_cli.errors import PitiError
    from piti_cli.pipeline.cascade import BASE_DEFAULTS
    from piti_cli.pipeline.provenance import png_chunks

    out_dir = Path(out_dir)
    models: dict[tuple, PitiPipeline] = {}
    lock = threading.Lock()
    clock = Clock()

    def pipeline(base_spec: str, up_spec: str) -> PitiPipeline:
        key = (base_spec.strip() or base, up_spec.strip() or upsampler)
        with lock:
            if key not in models:
                models.clear()  # one pair in memory
                models[key] = PitiPipeline.from_pretrained(key[0], key[1], device=device, precision=precision,
                                                           weights_dir=weights_dir)
            return models[key]

    pipeline("", "")  # the first pair loads now: the first Generate only samples, a bad --base fails here

    def fail(err: BaseException):
        if isinstance(err, PitiError):
            return gr.Error(str(err))
        return gr.Error(f"piti bug: {type(err).__name__}: {err} (please report it; the app keeps serving)")

    def condition_of(editor, pipe: PitiPipeline) -> np.ndarray:
        picture = None if editor is None else editor.get("composite")
        if picture is None:
            raise gr.Error("draw or upload a condition first")
        kind = pipe.input_kind
        try:
            drawn = snap_mask(picture) if kind == "mask" else snap_sketch(picture) if kind == "sketch" else picture
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return np.asarray(drawn)

    def upload(path, as_photo: bool, base_spec: str, up_spec: str):
        if not path:
            return gr.skip()

        def load() -> np.ndarray:
            if as_photo:
                return np.asarray(sketch_from_photo(path, device=device))
            read_condition(path, pipeline(base_spec, up_spec).input_kind)  # the reader's checks: a bad upload says why
            return np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.NEAREST))
        picture = checked(load)
        rgb = np.repeat(picture[..., None], 3, -1) if picture.ndim == 2 else picture
        return {"background": rgb, "layers": [], "composite": rgb}

    def set_brush(coco_id):
        colours = [hex_colour(class_colour(int(coco_id)))] + [hex_colour(class_colour(i)) for i in COCO_IDS]
        return gr.update(brush=gr.Brush(colors=list(dict.fromkeys(colours)), default_color=colours[0],
                                        color_mode="fixed"))

    def save(folder: Path, pictures, records) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for picture, record in zip(pictures, records):
            name = f"{record['condition']}_seed{record['seed']}_{record['sample_index']}.png"
            paths.append(str(save_png(np.asarray(picture), folder / name, png_chunks(record))))
        return paths

    def checked(work):
        """`work()`; a failure becomes the page's message (a bug says so)."""
        try:
            return work()
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001 - shown in the page
            raise fail(err) from None

    def follow(run):
        """`stream(run)`: a failed job becomes the page's message; Stop ends it as ("stopped", None)."""
        for kind, value in stream(run):
            if kind == "error":
                if isinstance(value, Cancelled):
                    yield "stopped", None
                    return
                raise fail(value)
            yield kind, value

    def generate(editor, base_spec, up_spec, guidance, normalized, sampler, steps, fast, start, seed, count):
        settings = dict(guidance_scale=float(guidance), normalized=bool(normalized), sampler=sampler,
                        num_inference_steps=str(steps), fast=bool(fast), upsample_start=int(start) if start else None)
        pipe = checked(lambda: pipeline(base_spec, up_spec))
        cond = checked(lambda: condition_of(editor, pipe))
        totals = checked(lambda: pipe.stage_steps(**settings))  # bad settings fail here, before the job
        count, seed = int(count), int(seed)
        yield "queued: starting", None, None, None, {"condition": cond, "seed": seed}
        clock.start()
        last = 0.0
        run = lambda callback, cancel: pipe(cond, seed=seed, num_images_per_prompt=count,  # noqa: E731
                                           batch_size=count, callback=callback, cancel=cancel, **settings)
        for kind, value in follow(run):
            if kind == "step":
                clock.tick(value.stage)
                todo = dict(totals, **{value.stage: value.total - value.step})
                if value.stage == "upsampler":
                    todo["base"] = 0
                if time.monotonic() - last > PREVIEW_EVERY or value.step == value.total:
                    last = time.monotonic()
                    preview = value.preview()[0].resize((256, 256), Image.NEAREST)
                    status = describe(value.stage, value.step, value.total, clock.left(todo))
                    yield status, preview, gr.skip(), gr.skip(), gr.skip()
            elif kind == "stopped":
                yield "stopped", gr.skip(), gr.skip(), gr.skip(), gr.skip()
            else:
                folder = out_dir / time.strftime("%Y%m%d-%H%M%S")
                paths = save(folder, value.images, value.records)
                yield f"done: {len(paths)} picture(s) in {folder}", gr.skip(), paths, paths, gr.skip()

    def edit_in_place(editor, last, base_spec, up_spec, guidance, steps):
        if not last:
            raise gr.Error("generate a picture first, then repaint part of its mask and press Edit")
        pipe = checked(lambda: pipeline(base_spec, up_spec))
        edited = checked(lambda: condition_of(editor, pipe))
        run = lambda callback, cancel: pipe.edit(last["condition"], edited, seed=last["seed"],  # noqa: E731
                                                guidance_scale=float(guidance), num_inference_steps=f"ddim{int(steps)}",
                                                callback=callback, cancel=cancel)
        for kind, value in follow(run):
            if kind == "step":
                yield f"**edit** step {value.step}/{value.total}", gr.skip()
            elif kind == "stopped":
                yield "stopped", gr.skip()
            else:
                yield "edited: the unchanged part of the mask keeps its picture", [
                    (value["original"], "before"), (value["edited"], "after")]

    demo_colour = hex_colour(class_colour(COCO_IDS[0]))
    with gr.Blocks(title="piti") as app:
        gr.Markdown("# piti\nDraw a mask with the class brushes (or upload a condition), then **Generate**. "
                    "Repaint part of it and press **Edit in place** to change only that part.")
        last = gr.State(None)
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="condition", type="numpy", image_mode="RGB", sources=(), format="png",
                    canvas_size=(256, 256), fixed_canvas=True, transforms=(), layers=False,
                    brush=gr.Brush(colors=[hex_colour(class_colour(i)) for i in COCO_IDS], default_color=demo_colour,
                                   color_mode="fixed"),
                    value={"background": np.full((256, 256, 3), class_colour(COCO_IDS[0]), np.uint8), "layers": [],
                           "composite": None},
                    elem_id="condition")
                brush = gr.Dropdown(brush_choices(), value=COCO_IDS[0], label="brush class (COCO-Stuff)")
                with gr.Row():
                    uploaded = gr.File(label="upload a condition (colour mask or sketch PNG)", type="filepath",
                                       file_types=["image"], elem_id="upload")
                    as_photo = gr.Checkbox(False, label="it is a photo: make a sketch (prep hed)")
                with gr.Accordion("model and settings", open=False):
                    base_spec = gr.Textbox("", label="base (registry id or path; empty: the demo)")
                    up_spec = gr.Textbox("", label="upsampler (registry id or path; empty: the demo's)")
                    guidance_in = gr.Slider(0, 15, value=guidance, step=0.5, label="guidance scale")
                    normalized = gr.Checkbox(False, label="normalized guidance (paper eq. 8)")
                    sampler = gr.Dropdown(list(SAMPLERS), value=BASE_DEFAULTS.sampler, label="base sampler")
                    steps_in = gr.Number(steps, precision=0, minimum=1, label="base steps")
                    fast = gr.Checkbox(False, label="--fast (DPM-Solver++ on both stages)")
                    start = gr.Number(upsample_start, precision=0, minimum=0,
                                      label="upsampler start step (0: from noise)")
                seed = gr.Number(0, precision=0, minimum=0, label="seed")
                count = gr.Slider(1, 4, value=1, step=1, label="pictures")
                with gr.Row():
                    go = gr.Button("Generate", variant="primary", elem_id="generate")
                    redo = gr.Button("Edit in place", elem_id="edit")
                    stop = gr.Button("Stop", elem_id="stop")
            with gr.Column():
                status = gr.Markdown("ready", elem_id="status")
                preview = gr.Image(label="x̂₀ while sampling", type="pil", interactive=False, height=256)
                gallery = gr.Gallery(label="pictures", columns=2, elem_id="pictures")
                files = gr.File(label="PNG files (settings in their text chunk)", file_count="multiple")
                before_after = gr.Gallery(label="edit: before / after", columns=2, elem_id="before-after")

        brush.change(set_brush, brush, editor)
        uploaded.upload(upload, [uploaded, as_photo, base_spec, up_spec], editor, concurrency_id="model")
        job = go.click(generate, [editor, base_spec, up_spec, guidance_in, normalized, sampler, steps_in, fast, start,
                                  seed, count], [status, preview, gallery, files, last], concurrency_id="model")
        edit_job = redo.click(edit_in_place, [editor, last, base_spec, up_spec, guidance_in, steps_in],
                              [status, before_after], concurrency_id="model")
        stop.click(None, cancels=[job, edit_job])
    app.queue(default_concurrency_limit=1, max_size=16)
    return app


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(blocks, host: str = "127.0.0.1", port: int = 7860, max_file_size: str = "20mb",
           open_browser: bool = False) -> str:
    """Serve `blocks` without blocking; returns the page's URL. Fonts are the system's (the
    default theme would fetch Google Fonts: the page works offline)."""
    import gradio as gr

    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    blocks.launch(server_name=host, server_port=port or free_port(host), max_file_size=max_file_size,
                  inbrowser=open_browser, prevent_thread_lock=True, quiet=True, share=False, theme=theme,
                  show_error=True, footer_links=[])
    return blocks.local_url
