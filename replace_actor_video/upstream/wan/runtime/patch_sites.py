"""Every place in Wan2.2 that the launcher's patches rely on, declared once: the functions and attributes it
replaces, the call sites that must go through them, the methods it wraps and their parameters.

The launcher checks them in the clone it runs, from the source (ast, before `import wan`), and stops with the
site and the clone's commit when one is missing: an upstream rename must not silently turn a patch off.
tests/test_patch_sites.py runs the same check on the contract fixture (tests/standins/fake_wan) and on a real
Wan2.2 clone when one is present. Standard library only: loaded by path from launcher.py.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass

FLASH_PARAMS = (
    "q",
    "k",
    "v",
    "q_lens",
    "k_lens",
    "dropout_p",
    "softmax_scale",
    "q_scale",
    "causal",
    "window_size",
    "deterministic",
    "dtype",
    "version",
)
ROPE_PARAMS = ("x", "grid_sizes", "freqs")


@dataclass(frozen=True)
class Site:
    file: str  # relative to the clone
    # "defines" (module-level name), "calls" (a call of that name), "method", "assigns" (self.X in a method),
    # "contains" (`code` in a method, as ast.unparse writes it: formatting does not matter), "calls_once" (exactly one
    # call of `code` in a method)
    kind: str
    name: str  # "flash_attention", "WanAnimate.generate", "WanAnimate.__init__.noise_model"
    patch: str  # the patch that needs it, as the launcher's docstring numbers them
    params: tuple[str, ...] = ()  # "defines"/"method": parameters the patch passes or relies on
    code: str = ""  # "contains": a piece of a statement; "calls_once": the function called, e.g. self.vae.decode

    def describe(self) -> str:
        what = {
            "defines": "a module-level {}",
            "calls": "a call of {}",
            "method": "the method {}",
            "assigns": "an assignment to self.{}",
            "contains": f"`{self.code}` in {{}}",
            "calls_once": f"exactly one call of {self.code}() in {{}}",
        }[self.kind]
        name = self.name.rsplit(".", 1)[1] if self.kind == "assigns" else self.name
        params = f"({', '.join(self.params)})" if self.params else ""
        return f"{self.file}: {what.format(name + params)} ({self.patch})"


def _attention_sites(file: str, patch: str = "patch 2, attention") -> tuple[Site, ...]:
    return Site(file, "defines", "flash_attention", patch), Site(file, "calls", "flash_attention", patch)


def _rope_sites(file: str) -> tuple[Site, ...]:
    return Site(file, "defines", "rope_apply", "patch 5, rope"), Site(file, "calls", "rope_apply", "patch 5, rope")


COLOR = "patch 6, colour match"
MEMORY = "patch 7, memory profile"


def _in_generate(code: str) -> Site:
    return Site("wan/animate.py", "contains", "WanAnimate.generate", COLOR, code=code)


SITES: tuple[Site, ...] = (
    # Patch 1: generate.py builds WanAnimate and calls its generate(), which takes the prompts.
    Site("generate.py", "calls", "WanAnimate", "patch 1, prompt"),
    Site("wan/animate.py", "method", "WanAnimate.generate", "patch 1, prompt", ("input_prompt", "n_prompt")),
    # Patch 2: every module that calls flash_attention / flash_attn_func binds the name the launcher replaces.
    Site("wan/modules/attention.py", "defines", "flash_attention", "patch 2, attention", FLASH_PARAMS),
    *_attention_sites("wan/modules/model.py"),
    *_attention_sites("wan/modules/animate/model_animate.py"),
    *_attention_sites("wan/modules/animate/clip.py"),
    *_attention_sites("wan/distributed/ulysses.py"),
    Site("wan/modules/animate/face_blocks.py", "defines", "flash_attn_func", "patch 2, attention"),
    Site("wan/modules/animate/face_blocks.py", "calls", "flash_attn_func", "patch 2, attention"),
    # Patch 4: the motion cache wraps after_patch_embedding and redoes its pose half.
    Site(
        "wan/modules/animate/model_animate.py",
        "method",
        "WanAnimateModel.after_patch_embedding",
        "patch 4, motion cache",
        ("x", "pose_latents", "face_pixel_values"),
    ),
    Site("wan/modules/animate/model_animate.py", "calls", "after_patch_embedding", "patch 4, motion cache"),
    # Patch 5: rope_apply where it is defined and where the name is bound and called.
    Site("wan/modules/model.py", "defines", "rope_apply", "patch 5, rope", ROPE_PARAMS),
    *_rope_sites("wan/modules/model.py"),
    *_rope_sites("wan/modules/animate/model_animate.py"),
    Site("wan/distributed/sequence_parallel.py", "defines", "rope_apply", "patch 5, rope", ROPE_PARAMS),
    Site("wan/distributed/sequence_parallel.py", "calls", "rope_apply", "patch 5, rope"),
    # Model options: LoRAs merge in _configure_model; fp8, compile and the VAE dtype act on what __init__ built.
    Site("wan/animate.py", "method", "WanAnimate._configure_model", "--lora", ("model",)),
    Site("wan/animate.py", "method", "WanAnimate.__init__", "--fp8/--compile/--vae_bf16"),
    Site("wan/animate.py", "assigns", "WanAnimate.__init__.noise_model", "--fp8/--compile"),
    Site("wan/animate.py", "assigns", "WanAnimate.__init__.vae", "--vae_bf16"),
    # fastload.py: T5 built on the meta device (umt5_xxl as T5EncoderModel calls it).
    Site("wan/modules/t5.py", "defines", "umt5_xxl", "fast loading"),
    Site("wan/modules/t5.py", "calls", "umt5_xxl", "fast loading"),
    # timing.py: the model constructors and calls it wraps, and save_video as generate.py calls it.
    Site("wan/modules/t5.py", "method", "T5EncoderModel.__init__", "timing", ("checkpoint_path",)),
    Site("wan/modules/t5.py", "method", "T5EncoderModel.__call__", "timing"),
    Site("wan/modules/animate/clip.py", "method", "CLIPModel.__init__", "timing", ("checkpoint_path",)),
    Site("wan/modules/vae2_1.py", "method", "Wan2_1_VAE.__init__", "timing", ("vae_pth",)),
    Site("wan/modules/vae2_1.py", "method", "Wan2_1_VAE.encode", "timing"),
    Site("wan/modules/vae2_1.py", "method", "Wan2_1_VAE.decode", "timing"),
    Site("wan/animate.py", "defines", "WanAnimateModel", "timing"),
    Site("wan/animate.py", "calls", "from_pretrained", "timing"),
    Site("wan/utils/utils.py", "defines", "save_video", "timing"),
    Site("generate.py", "calls", "save_video", "timing"),
    # Patch 6 (clip_color.py): generate()'s clip loop decodes each clip once and takes the next clip's guide from
    # those frames; the hook follows the clips by clip_len/refert_num and reads the masks through the methods that
    # read and pad the inputs, called with the arguments upstream uses.
    Site("wan/animate.py", "method", "WanAnimate.generate", COLOR, ("clip_len", "refert_num")),
    Site("wan/animate.py", "calls_once", "WanAnimate.generate", COLOR, code="self.vae.decode"),
    _in_generate("out_frames = torch.stack(self.vae.decode("),
    _in_generate("out_frames[0, :, -refert_num:]"),
    _in_generate("start += clip_len - refert_num"),
    _in_generate("self.prepare_source("),
    _in_generate("self.prepare_source_for_replace("),
    _in_generate("self.get_valid_len("),
    _in_generate("self.inputs_padding("),
    Site("wan/animate.py", "method", "WanAnimate.prepare_source", COLOR),
    Site("wan/animate.py", "method", "WanAnimate.prepare_source_for_replace", COLOR),
    Site("wan/animate.py", "method", "WanAnimate.get_valid_len", COLOR, ("real_len", "clip_len", "overlap")),
    Site("wan/animate.py", "method", "WanAnimate.inputs_padding", COLOR, ("array", "target_len")),
    # Patch 7 (memory.py): the DiT built with device_map=self.device (loaded into CPU memory instead), its forward
    # walking model.blocks (streamed), CLIP's visual and the VAE's encode/decode run with their .model on the GPU.
    Site("wan/animate.py", "contains", "WanAnimate.__init__", MEMORY, code="device_map=self.device"),
    Site("wan/animate.py", "assigns", "WanAnimate.__init__.device", MEMORY),
    Site("wan/animate.py", "assigns", "WanAnimate.__init__.clip", MEMORY),
    Site(
        "wan/modules/animate/model_animate.py",
        "contains",
        "WanAnimateModel.forward",
        MEMORY,
        code="enumerate(self.blocks)",
    ),
    Site("wan/modules/animate/clip.py", "method", "CLIPModel.visual", MEMORY),
    Site("wan/modules/animate/clip.py", "assigns", "CLIPModel.__init__.model", MEMORY),
    Site("wan/modules/vae2_1.py", "assigns", "Wan2_1_VAE.__init__.model", MEMORY),
)


def _module_level(tree: ast.Module):
    """Module-level statements, including those inside if/try/with blocks (e.g. `try: from flash_attn import ...`)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop(0)
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            stack += [
                *node.body,
                *getattr(node, "orelse", []),
                *getattr(node, "finalbody", []),
                *(s for h in getattr(node, "handlers", []) for s in h.body),
            ]


def _defined(tree: ast.Module) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in _module_level(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update({(alias.asname or alias.name).split(".")[0]: node for alias in node.names})
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return names


def _params(func: ast.AST) -> set[str]:
    args = func.args  # type: ignore[attr-defined]
    return {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}


def _method(tree: ast.Module, qualname: str) -> ast.AST | None:
    cls_name, method = qualname.split(".")
    cls = _defined(tree).get(cls_name)
    if not isinstance(cls, ast.ClassDef):
        return None
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method), None)


def _found(tree: ast.Module, site: Site) -> bool:
    if site.kind == "defines":
        node = _defined(tree).get(site.name)
        return node is not None and (
            not site.params or (isinstance(node, ast.FunctionDef) and set(site.params) <= _params(node))
        )
    if site.kind == "calls":
        return any(
            isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == site.name or getattr(n.func, "attr", None) == site.name)
            for n in ast.walk(tree)
        )
    if site.kind == "method":
        node = _method(tree, site.name)
        return node is not None and set(site.params) <= _params(node)
    if site.kind == "assigns":
        qualname, attribute = site.name.rsplit(".", 1)
        node = _method(tree, qualname)
        return node is not None and any(
            isinstance(t, ast.Attribute) and t.attr == attribute and getattr(t.value, "id", None) == "self"
            for n in ast.walk(node)
            if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        )
    if site.kind in ("contains", "calls_once"):
        node = _method(tree, site.name)
        if node is None:
            return False
        if site.kind == "contains":
            return site.code in ast.unparse(node)
        return sum(isinstance(n, ast.Call) and ast.unparse(n.func) == site.code for n in ast.walk(node)) == 1
    raise ValueError(f"unknown site kind {site.kind!r}")


def missing_sites(clone: str, sites: tuple[Site, ...] = SITES) -> list[Site]:
    """The sites this Wan2.2 clone does not have (a missing or unparsable file misses all of its sites)."""
    trees: dict[str, ast.Module | None] = {}
    missing = []
    for site in sites:
        if site.file not in trees:
            try:
                with open(os.path.join(clone, site.file), encoding="utf-8") as fh:
                    trees[site.file] = ast.parse(fh.read(), filename=site.file)
            except (OSError, SyntaxError, ValueError):
                trees[site.file] = None
        tree = trees[site.file]
        if tree is None or not _found(tree, site):
            missing.append(site)
    return missing
