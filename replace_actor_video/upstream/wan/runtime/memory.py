"""Memory profiles for the Wan2.2-Animate DiT on GPUs of 24-48 GB (`--memory_profile`), applied by the launcher
around the official code (the clone is never edited).

The official code keeps the whole DiT on the GPU: 40 blocks of 0.75 GiB plus 2.1 GiB of embeddings, face adapter and
head (32.3 GiB in bf16), activations on top (11 GiB at 1280×720×77), and the VAE's decode needs ~20 GiB at 720p
while all of that is still there. The profiles:
- full: upstream as it is.
- low: the DiT's weights live in pinned CPU memory. Its 2.1 GiB of non-block parts come to the GPU for the DiT's
  forwards; its blocks are streamed one at a time into two GPU slots, block i+1 copied on a side CUDA stream while
  block i computes (block swap). Whenever the VAE runs, the DiT is off the GPU entirely; CLIP comes to the GPU only
  for its one call per clip; T5 runs on the CPU (upstream's --t5_cpu, passed by the stage).
- balanced: low for the first forward, which measures its own peak memory; then as many blocks as fit under the
  budget (the GPU, or RAV_GPU_MEMORY_CAP_GIB) stay on the GPU, spread evenly over the 40 so the streamed ones have
  compute to hide behind; the rest stream. The VAE still gets the whole GPU (the kept blocks are dropped before it
  runs and copied back at the next forward: 0.75 GiB each, a fraction of a second per clip).

Streaming changes where the weights are, not their values: a streamed forward is bit-identical to a resident one
(tests/test_memory_profiles.py, on upstream's own WanAnimateModel at small dims). LoRA merging (before this), the
attention routes and torch.compile of each block (the compiled code reads the weights it is handed) work with every
profile; torchao's --fp8 replaces the weights by tensor subclasses that cannot be streamed: the stage refuses it.

Hook sites (patch_sites.py, "patch 7, memory profile": the launcher checks them in the clone before `import wan`):
WanAnimateModel.forward iterates `enumerate(self.blocks)`; WanAnimate builds the DiT with
`WanAnimateModel.from_pretrained(..., device_map=self.device)` and has `.device`, `.vae`, `.clip`, `.noise_model`;
CLIP runs through `CLIPModel.visual` and holds `.model`, the VAE `Wan2_1_VAE.encode/decode` with `.model`. A forward
that does not run every block through `model.blocks` is still caught when it happens (DiTStreamer.end).

RAV_GPU_MEMORY_CAP_GIB (a test knob, e.g. 24): torch.cuda.set_per_process_memory_fraction so that this process
may allocate at most that many GiB, to try a smaller card's budget on a big one. Standard library and torch only.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

import torch

CAP_ENV = "RAV_GPU_MEMORY_CAP_GIB"
GIB = 2**30
ALIGN = 256  # bytes: every tensor in a flat buffer starts aligned (what CUDA kernels and Inductor expect)
# Kept free by balanced beyond the measured peak: the next clip's shapes and the blocks' own fragmentation. The peak
# is the allocator's *reserved* memory, which the cap (set_per_process_memory_fraction) limits: with the allocated peak
# and 2 GiB, balanced kept 40 blocks at a 48 GiB cap and 9 at 24 GiB and ran out of memory at 720p (H200, 2026-12-01,
# docs/bench/2026-12-01/memory/).
MARGIN = 3 * GIB
SLOTS = 2  # GPU slots for streamed blocks: one computing, one being filled


class MemoryProfileError(RuntimeError):
    """Upstream's DiT forward did not go through the streamed blocks; the message says why."""


def apply_cap(log: Callable[[str], None]) -> int | None:
    """RAV_GPU_MEMORY_CAP_GIB → torch.cuda.set_per_process_memory_fraction; returns the cap in bytes."""
    text = os.environ.get(CAP_ENV)
    if not text or not torch.cuda.is_available():
        return None
    total = torch.cuda.get_device_properties(0).total_memory
    cap = int(float(text) * GIB)
    torch.cuda.set_per_process_memory_fraction(min(cap / total, 1.0), 0)
    log(f"memory cap: at most {float(text):g} GiB of this GPU's {total / GIB:.0f} GiB ({CAP_ENV}, a test knob)")
    return cap


# ---- tensors of a module in one flat buffer ----------------------------------------------------------------------


class ParamGroup:
    """The parameters and buffers of some modules, packed into one flat byte buffer in (pinned) CPU memory; the
    tensors are pointed at views of that buffer or of a same-sized buffer on the GPU. One copy moves them all."""

    def __init__(self, modules: list[torch.nn.Module], pin: bool) -> None:
        self.entries = []  # (module, name, is_parameter, dtype, shape, offset)
        offset = 0
        seen = set()
        for module in modules:
            for sub in module.modules():
                for is_param, table in ((True, sub._parameters), (False, sub._buffers)):
                    for name, tensor in table.items():
                        if tensor is None or id(tensor) in seen:
                            continue
                        seen.add(id(tensor))
                        self.entries.append((sub, name, is_param, tensor.dtype, tuple(tensor.shape), offset))
                        offset += -(-tensor.numel() * tensor.element_size() // ALIGN) * ALIGN
        self.nbytes = offset
        self.cpu = torch.empty(offset, dtype=torch.uint8, pin_memory=pin)
        for entry in self.entries:
            sub, name, is_param = entry[:3]
            self._view(self.cpu, entry).copy_((sub._parameters if is_param else sub._buffers)[name].detach())
        self.point_to(self.cpu)

    @staticmethod
    def _view(flat: torch.Tensor, entry) -> torch.Tensor:
        _, _, _, dtype, shape, offset = entry
        count = 1
        for size in shape:
            count *= size
        nbytes = count * torch.empty((), dtype=dtype).element_size()
        return flat[offset : offset + nbytes].view(dtype).view(shape)

    def point_to(self, flat: torch.Tensor) -> None:
        """Every tensor of the group now reads from `flat` (the pinned CPU copy or a GPU buffer)."""
        for entry in self.entries:
            sub, name, is_param = entry[:3]
            view = self._view(flat, entry)
            if is_param:
                sub._parameters[name].data = view
            else:
                sub._buffers[name] = view


# ---- the streamed DiT ------------------------------------------------------------------------------------------


class StreamedBlocks(torch.nn.ModuleList):
    """model.blocks for a streamed DiT: the same modules (names, state_dict, compile, LoRA all unchanged); iterating
    it inside a forward makes sure each block's weights are on the GPU when the loop reaches it."""

    streamer: DiTStreamer | None = None

    def __iter__(self):
        if self.streamer is None or not self.streamer.active:
            return super().__iter__()
        return self.streamer.iterate()


class DiTStreamer:
    """Places a WanAnimateModel's weights: non-block parts and `resident` blocks on the GPU for its forwards, the
    other blocks streamed through SLOTS GPU buffers with the next block's copy on a side stream."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device,
        *,
        resident: int | str = 0,
        budget: int | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.model, self.device, self.log = model, torch.device(device), log
        self.cuda = self.device.type == "cuda"
        pin = self.cuda
        started = time.perf_counter()
        blocks = list(model.blocks)
        self.blocks = [ParamGroup([block], pin) for block in blocks]
        others = [module for name, module in model.named_children() if name != "blocks"]
        self.rest = ParamGroup(others, pin)
        self.block_bytes = max(group.nbytes for group in self.blocks)
        self.gpu: dict[int, torch.Tensor] = {}  # block → its GPU buffer (resident blocks, or a slot's)
        self.rest_gpu: torch.Tensor | None = None
        self.slots: list[torch.Tensor] = []
        self.slot_of: dict[int, int] = {}  # streamed block → slot holding it
        self.ready: dict[int, object] = {}  # block → event: its copy is done
        self.slot_free: list[object] = []  # slot → event: the block that used it last has run
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.active = False
        self.configure(resident, budget)
        model.blocks.__class__ = StreamedBlocks
        model.blocks.streamer = self
        model.register_forward_pre_hook(lambda module, args, kwargs: self.begin(), with_kwargs=True)
        model.register_forward_hook(lambda module, args, output: self.end())
        gib = sum(group.nbytes for group in self.blocks) / GIB
        self.log(
            f"memory: DiT weights in {'pinned ' if pin else ''}CPU memory ({gib:.1f} GiB of blocks, "
            f"{self.rest.nbytes / GIB:.1f} GiB of other parts) in {time.perf_counter() - started:.1f} s"
        )

    # -- GPU buffers --
    def _alloc(self) -> torch.Tensor:
        return torch.empty(self.block_bytes, dtype=torch.uint8, device=self.device)

    def _copy(self, group: ParamGroup, flat: torch.Tensor) -> object:
        """Copy a group into `flat` (on the side stream on a GPU); returns the event that marks it done."""
        if not self.cuda:
            flat[: group.nbytes].copy_(group.cpu)
            return None
        with torch.cuda.stream(self.copy_stream):
            flat[: group.nbytes].copy_(group.cpu, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        return event

    def _wait(self, event) -> None:
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)

    def begin(self) -> None:
        """Before a forward: the non-block parts and the resident blocks onto the GPU, the first streamed block on
        its way."""
        if self.cuda:  # fresh buffers may reuse memory the compute stream just freed: copies go after it
            self.copy_stream.wait_stream(torch.cuda.current_stream(self.device))
            if self.adaptive and self.forwards == 0:
                torch.cuda.reset_peak_memory_stats(self.device)
        if self.rest_gpu is None:
            self.rest_gpu = torch.empty(self.rest.nbytes, dtype=torch.uint8, device=self.device)
            self._wait(self._copy(self.rest, self.rest_gpu))
            self.rest.point_to(self.rest_gpu)
        for index in sorted(self.resident):
            if index not in self.gpu:
                self.gpu[index] = self._alloc()
                self.ready[index] = self._copy(self.blocks[index], self.gpu[index])
                self.blocks[index].point_to(self.gpu[index])
        if len(self.resident) < len(self.blocks) and not self.slots:
            self.slots = [self._alloc() for _ in range(SLOTS)]
            self.slot_free = [None] * SLOTS
        self.active = True
        self.slot_of.clear()
        self._prefetch(-1)

    def _streamed_after(self, index: int) -> int | None:
        return next((i for i in range(index + 1, len(self.blocks)) if i not in self.resident), None)

    def _prefetch(self, index: int) -> None:
        """Start copying the next streamed block after `index` into the slot that is not in use."""
        nxt = self._streamed_after(index)
        if nxt is None or nxt in self.slot_of:
            return
        slot = len(self.slot_of) % SLOTS
        if self.cuda and self.slot_free[slot] is not None:
            self.copy_stream.wait_event(self.slot_free[slot])  # the block that used this slot has run
        self.slot_of[nxt] = slot
        self.ready[nxt] = self._copy(self.blocks[nxt], self.slots[slot])
        self.blocks[nxt].point_to(self.slots[slot])

    def iterate(self):
        blocks = self.model.blocks
        for index, block in enumerate(torch.nn.ModuleList.__iter__(blocks)):
            self._wait(self.ready.get(index))
            self._prefetch(index)
            yield block
            if index not in self.resident:  # its kernels are queued: the slot is free once they have run
                slot = self.slot_of[index]
                if self.cuda:
                    event = torch.cuda.Event()
                    event.record(torch.cuda.current_stream(self.device))
                    self.slot_free[slot] = event
                self.blocks[index].point_to(self.blocks[index].cpu)
        self.visited = index + 1

    def end(self) -> None:
        self.active = False
        if getattr(self, "visited", 0) != len(self.blocks):
            raise MemoryProfileError(
                f"the DiT forward ran {getattr(self, 'visited', 0)} of {len(self.blocks)} "
                "blocks through model.blocks (upstream changed its loop): streaming cannot "
                "follow it; use --memory_profile full"
            )
        self.visited = 0
        self.forwards += 1
        if self.adaptive and self.forwards == 1:
            self.fit()

    def fit(self) -> None:
        """balanced: after the first (fully streamed) forward, keep as many blocks on the GPU as its measured peak
        leaves room for under the budget."""
        peak = torch.cuda.max_memory_reserved(self.device) if self.cuda else 0
        if self.budget is not None:
            budget = self.budget
        else:  # no GPU (a CPU check): nothing limits what is kept
            budget = available_bytes(self.device) if self.cuda else peak + MARGIN + len(self.blocks) * self.block_bytes
        room = budget - peak - MARGIN
        count = max(0, min(len(self.blocks), int(room // self.block_bytes)))
        if count >= len(self.blocks) - 1:  # a single streamed block would keep both slots: keep them all
            count = len(self.blocks)
        self.resident = spread(len(self.blocks), count)
        if count == len(self.blocks):
            self.slots, self.slot_free = [], []
        self.log(
            f"memory: balanced keeps {count} of {len(self.blocks)} DiT blocks on the GPU (first forward peaked "
            f"at {peak / GIB:.1f} GiB of a {budget / GIB:.1f} GiB budget; {self.block_bytes / GIB:.2f} GiB per "
            "block)"
        )

    def configure(self, resident: int | str, budget: int | None = None) -> None:
        """Switch between low (0), a fixed number of kept blocks, and balanced ("fit": chosen after the next forward
        under `budget`); the DiT leaves the GPU first."""
        self.evict()
        self.adaptive, self.budget, self.forwards = resident == "fit", budget, 0
        self.resident = set() if self.adaptive else spread(len(self.blocks), int(resident))

    def evict(self) -> None:
        """The whole DiT off the GPU (its CPU copy is always current): before the VAE or CLIP run."""
        if self.cuda:
            torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)
        for index in list(self.gpu):
            self.blocks[index].point_to(self.blocks[index].cpu)
        self.gpu.clear()
        self.slots, self.slot_free = [], []
        self.slot_of.clear()
        self.ready.clear()
        if self.rest_gpu is not None:
            self.rest.point_to(self.rest.cpu)
            self.rest_gpu = None


def spread(total: int, count: int) -> set[int]:
    """`count` of `total` block indices, evenly spaced (kept blocks between streamed ones hide their copies)."""
    if count <= 0:
        return set()
    return {int(i * total / count) for i in range(count)}


def available_bytes(device: torch.device) -> int:
    """What this process may use: free memory plus what it already holds, under its memory fraction if set."""
    free, total = torch.cuda.mem_get_info(device)
    usable = free + torch.cuda.memory_reserved(device)
    cap = os.environ.get(CAP_ENV)
    return min(usable, int(float(cap) * GIB)) if cap else usable


# ---- the launcher's hooks --------------------------------------------------------------------------------------


class _OnDemand:
    """A model that lives on the CPU and visits the GPU for each call of `method` (CLIP's visual, the VAE)."""

    def __init__(self, owner, module_attr: str, method: str, device, before: Callable[[], None]) -> None:
        holder = getattr(owner, module_attr) if module_attr else owner
        self.holder, self.device, self.before = holder, device, before
        call = getattr(owner, method)

        def visit(*args, **kwargs):
            self.before()
            holder.to(self.device)
            try:
                return call(*args, **kwargs)
            finally:
                holder.to("cpu")

        setattr(owner, method, visit)
        holder.to("cpu")


def wrap_init(init: Callable, dit: type, profile: str, log: Callable[[str], None]) -> Callable:
    """WanAnimate.__init__ for `profile` (balanced or low): upstream's `init` builds the models with the DiT (`dit`,
    WanAnimateModel) loaded into CPU memory, then place() streams it. The launcher installs it (after `import wan`)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        own = dit.__dict__.get("from_pretrained")  # another hook's wrapper (timing), or inherited from diffusers
        loader = dit.from_pretrained  # whatever is in place when the model is built, bound to the class

        def on_the_cpu(klass, *a, **k):
            k["device_map"] = "cpu"  # the DiT loads into CPU memory; the streamer places it
            return loader(*a, **k)

        dit.from_pretrained = classmethod(on_the_cpu)
        try:
            init(self, *args, **kwargs)
        finally:
            if own is None:
                del dit.from_pretrained
            else:
                dit.from_pretrained = own
        place(self, profile, log)

    return __init__


def place(animate, profile: str, log: Callable[[str], None]) -> DiTStreamer:
    """Stream the DiT of a built WanAnimate; CLIP and the VAE on the GPU only while they run, the DiT off it then."""
    device = animate.device
    streamer = DiTStreamer(animate.noise_model, device, resident="fit" if profile == "balanced" else 0, log=log)
    _OnDemand(animate.clip, "model", "visual", device, streamer.evict)
    vae = animate.vae
    for method in ("encode", "decode"):
        _OnDemand(vae, "model", method, device, streamer.evict)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log(
        f"memory: profile {profile}: DiT blocks streamed from CPU memory"
        + (" (as many kept on the GPU as fit, after the first forward)" if profile == "balanced" else "")
        + "; CLIP and VAE on the GPU only while they run, the DiT off it then"
    )
    return streamer
