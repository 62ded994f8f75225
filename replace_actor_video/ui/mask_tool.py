"""The mask tool, in the order people work: load the driving video → pick a frame on the timeline → click
positive/negative points on as many frames as needed (each frame's points listed, removable) → "Preview
mask" (SAM2 → grow → blockify over a chosen frame range, played over the video) → "Use for generation",
which fills the full-pipeline form (video, points, replace mode, the mask settings) for a Run. The points
JSON stays visible, can be saved and loaded again for other references. Frames are the preprocessed ones
(the fps and resolution below), so the points file means the same to the mask stage (ui/points_editor.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..core.errors import UserError
from . import points_editor
from .commands import Form, Workspace, label
from .forms import FormView, component
from .media import check_media
from .settings import ServerSettings

# The preprocessing and mask options the tool shows (the pipeline form's own fields, declared in the specs).
FRAME_OPTIONS = ("fps", "resolution")
MASK_OPTIONS = (
    "sam2_checkpoint",
    "mask_grow",
    "mask_grow_shape",
    "mask_block",
    "mask_snap16",
    "sam2_image_size",
    "mask_device",
)
PREVIEW_FRAMES = 48  # the default preview range: this many frames from the first clicked one


@dataclass
class MaskTool:
    editor: Any
    video: Any
    video_path: Any
    frame_options: dict[str, Any]
    mask_options: dict[str, Any]
    use: Any
    points_file: Callable[[points_editor.Editor, bool], Path]  # saves the clicks, returns the file


def _spec(form: Form, name: str):
    spec = form.field(name)
    if spec is None:
        raise KeyError(f"the {form.name} form has no option {name}")
    return spec


def build_mask_tool(
    form: Form, workspace: Workspace, settings: ServerSettings, cache: Path, points_dir: Path
) -> MaskTool:
    """The tool's components and events; `form` (the full pipeline's) supplies the option specs it shows."""
    editor = gr.State(points_editor.Editor())
    gr.Markdown("**1 · Driving video** — frames are shown as preprocessing will sample and size them.")
    with gr.Row(equal_height=False):
        video = gr.Video(label="Driving video", sources=["upload"], elem_id="mask-video", height=180)
        with gr.Column():
            video_path = gr.Textbox(
                label="Driving video: or a path on the server",
                elem_id="mask-video-path",
                placeholder="inside the workspace, e.g. media/dance.mp4",
            )
            frame_options = {
                name: component(form, _spec(form, name), f"mask-{name}", settings) for name in FRAME_OPTIONS
            }
            load = gr.Button("Load video", variant="primary", elem_id="mask-load")
    gr.Markdown(
        "**2 · Click on the person** — pick a frame on the timeline; positive clicks on the person, "
        "negative on what must stay background. Several frames may get clicks."
    )
    timeline = gr.Slider(
        0, 1, value=0, step=1, label="Frame (of the preprocessed video)", interactive=False, elem_id="mask-timeline"
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            image = gr.Image(
                label="Frame: click to add a point", interactive=False, type="pil", elem_id="mask-frame", height=360
            )
        with gr.Column(scale=2, min_width=260):
            mode = gr.Radio(
                ["positive", "negative"], value="positive", label="A click adds a", elem_id="mask-click-mode"
            )
            with gr.Row():
                undo = gr.Button("Undo", size="sm", elem_id="mask-undo")
                clear = gr.Button("Clear this frame", size="sm", elem_id="mask-clear")
            points_list = gr.CheckboxGroup([], label="Points, by frame (tick to remove)", elem_id="mask-points")
            remove = gr.Button("Remove ticked points", size="sm", elem_id="mask-remove")
    gr.Markdown(
        "**3 · Points JSON** — the format `--points` reads (docs/MASK.md); reusable with other character images."
    )
    with gr.Row(equal_height=False):
        json_box = gr.Code(
            label="Points JSON", language="json", interactive=False, elem_id="mask-json", lines=8, max_lines=16
        )
        with gr.Column():
            normalized = gr.Checkbox(
                label="Normalized coordinates (for a video of another size)", value=False, elem_id="mask-normalized"
            )
            save = gr.Button("Save points JSON", elem_id="mask-save")
            saved = gr.File(label="Saved points file", interactive=False, elem_id="mask-file", height=80)
            load_points = gr.File(
                label="Load a points JSON", type="filepath", file_types=[".json"], elem_id="mask-load-points", height=80
            )
    gr.Markdown(
        "**4 · Preview the mask** — SAM2 on the chosen frames, then grow and blockify, as the mask stage will do it."
    )
    with gr.Accordion("Mask settings (as in the full pipeline's Mask section)", open=True, elem_id="mask-settings"):
        with gr.Row():
            mask_options = {
                name: component(form, _spec(form, name), f"mask-{name}", settings) for name in MASK_OPTIONS[:3]
            }
        with gr.Row():
            mask_options.update(
                {name: component(form, _spec(form, name), f"mask-{name}", settings) for name in MASK_OPTIONS[3:]}
            )
    with gr.Row():
        first = gr.Number(label="First frame", value=0, precision=0, minimum=0, elem_id="mask-first")
        last = gr.Number(label="Last frame", value=PREVIEW_FRAMES - 1, precision=0, minimum=0, elem_id="mask-last")
        preview = gr.Button("Preview mask", variant="primary", elem_id="mask-preview")
    message = gr.Markdown(elem_id="mask-message")
    mask_video = gr.Video(
        label="Mask over the video",
        interactive=False,
        autoplay=True,
        loop=True,
        elem_id="mask-preview-video",
        height=360,
    )
    gr.Markdown(
        "**5 · Generate** — fills the full-pipeline form with this video, these points, replace mode "
        "and the mask settings; add the character image there and press Run."
    )
    use = gr.Button("Use for generation →", variant="primary", elem_id="mask-use")

    def shown(ed: points_editor.Editor, norm: bool) -> list[Any]:
        try:
            text = ed.to_json(normalized=norm) if ed.clicks else ""
        except UserError as exc:
            text = f"// {exc}"
        return [ed, points_editor.draw(ed), gr.update(choices=ed.listing(), value=[]), text]

    view = [editor, image, points_list, json_box]

    def source(upload: str | None, typed: str) -> Path:
        if typed and typed.strip():
            path = workspace.resolve(typed, "Driving video")
        elif upload:
            path = Path(upload)
        else:
            raise UserError("choose a driving video: upload one or give its path on the server")
        check_media(path, "video")
        return path

    def frame_settings(fps: Any, resolution: str) -> tuple[int, tuple[int, int]]:
        fps_spec, res_spec = _spec(form, "fps"), _spec(form, "resolution")
        try:
            return int(fps), res_spec.meta.parse(str(resolution))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{label(fps_spec)} / {label(res_spec)}: {exc}") from None

    def do_load(upload: str | None, typed: str, fps: Any, resolution: str, norm: bool) -> list[Any]:
        try:
            rate, area = frame_settings(fps, resolution)
            ed = points_editor.load_video(source(upload, typed), fps=rate, area=area, cache=cache)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        slider = gr.update(
            minimum=0,
            maximum=max(ed.frames - 1, 1),
            value=0,
            interactive=True,
            label=f"Frame (0 to {ed.frames - 1}, {ed.width}x{ed.height} at {ed.fps:g} fps)",
        )
        return [*shown(ed, norm), slider, gr.update(value=min(PREVIEW_FRAMES, ed.frames) - 1, maximum=ed.frames - 1)]

    def do_seek(ed: points_editor.Editor, frame: float, norm: bool) -> list[Any]:
        if not ed.indices:
            return [gr.skip()] * len(view)
        try:
            return shown(points_editor.show(ed, int(frame), cache), norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    def do_click(ed: points_editor.Editor, kind: str, norm: bool, evt: gr.SelectData) -> list[Any]:
        try:
            return shown(ed.click(evt.index[0], evt.index[1], kind == "positive"), norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    def do_load_points(ed: points_editor.Editor, path: str | None, norm: bool) -> list[Any]:
        if not path:
            return [gr.skip()] * len(view)
        try:
            check_media(path, "points")
            return shown(ed.with_points(Path(path)), norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    def points_file(ed: points_editor.Editor, norm: bool) -> Path:
        text = ed.to_json(normalized=norm)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        return points_editor.save(ed, points_dir / f"{Path(ed.video).stem}-{digest}.json", normalized=norm)

    def do_save(ed: points_editor.Editor, norm: bool) -> list[Any]:
        try:
            out = points_file(ed, norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        return [str(out), f"Saved `{out}`: give it to `--points`, or press *Use for generation*."]

    def mask_settings(values: dict[str, Any]) -> points_editor.MaskSettings:
        picks = settings.weight_files("sam2_checkpoint")
        chosen = values["sam2_checkpoint"]
        if not chosen:
            raise UserError("choose a SAM2 checkpoint (the server lists the files of its SAM2 folder)")
        if chosen not in picks:
            raise UserError(f"{chosen!r} is not one of the server's SAM2 checkpoints; pick one from the list")
        size = values["sam2_image_size"]
        return points_editor.MaskSettings(
            checkpoint=picks[chosen],
            config=settings.locations.get("sam2_config"),
            device=values["mask_device"],
            image_size=int(size) if size not in (None, "") else None,
            grow=int(values["mask_grow"]),
            grow_shape=values["mask_grow_shape"],
            block=int(values["mask_block"]),
            snap16=bool(values["mask_snap16"]),
        )

    def do_preview(ed: points_editor.Editor, lo: float, hi: float, *raw: Any) -> list[Any]:
        values = dict(zip(MASK_OPTIONS, raw))
        try:
            if not ed.loaded:
                raise UserError("load a video and click on the person first")
            out = points_editor.preview_mask(ed, int(lo or 0), int(hi or 0), mask_settings(values), cache)
        except UserError as exc:
            return [None, f"**Mask preview not made:** {exc}"]
        except Exception as exc:  # noqa: BLE001  (torch/sam2 on a bad file raise anything; the UI goes on)
            return [None, f"**Mask preview not made:** SAM2 failed ({type(exc).__name__}: {exc})"]
        return [str(out), f"Mask of frames {int(lo)}–{int(hi)}: SAM2 → grow → blockify, as the mask stage makes it."]

    load.click(do_load, [video, video_path, *frame_options.values(), normalized], [*view, timeline, last])
    timeline.input(do_seek, [editor, timeline, normalized], view, trigger_mode="always_last", show_progress="hidden")
    image.select(do_click, [editor, mode, normalized], view)
    undo.click(lambda ed, n: shown(ed.undo(), n), [editor, normalized], view)
    clear.click(lambda ed, n: shown(ed.clear_frame(), n), [editor, normalized], view)
    remove.click(lambda ed, ticked, n: shown(ed.remove(list(ticked or [])), n), [editor, points_list, normalized], view)
    normalized.change(lambda ed, n: shown(ed, n), [editor, normalized], view)
    load_points.upload(do_load_points, [editor, load_points, normalized], view)
    save.click(do_save, [editor, normalized], [saved, message])
    preview.click(
        do_preview,
        [editor, first, last, *mask_options.values()],
        [mask_video, message],
        concurrency_limit=1,
        concurrency_id="sam2",
    )
    return MaskTool(editor, video, video_path, frame_options, mask_options, use, points_file)


def use_for_generation(tool: MaskTool, view: FormView, form: Form) -> Callable[..., list[Any]]:
    """The handler of "Use for generation": the pipeline form's updates (its slots' order, then its Mask
    section opened), from the tool."""
    index = {(s.name, s.role): i for i, s in enumerate(view.slots)}
    switch = form.field("replace")

    def use(ed: points_editor.Editor, norm: bool, upload: str | None, typed: str, *raw: Any) -> list[Any]:
        try:
            points = tool.points_file(ed, norm)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        out: list[Any] = [gr.skip()] * len(view.slots)
        names = [*FRAME_OPTIONS, *MASK_OPTIONS]
        for name, value in zip(names, raw):
            out[index[(name, "value")]] = value
        typed = (typed or "").strip()
        out[index[("video_path", "upload")]] = None if typed else upload
        out[index[("video_path", "path")]] = typed
        out[index[("points", "path")]] = str(points)
        out[index[("replace", "value")]] = switch.meta.switch[True]
        out[index[("mask_mode", "value")]] = "contour"
        gr.Info(
            "The full-pipeline form now has this video, these points and replace mode: add the character "
            "image and press Run.",
            duration=6,
        )
        return [*out, gr.Accordion(open=True)]  # the Mask section, to show what was filled in

    return use
