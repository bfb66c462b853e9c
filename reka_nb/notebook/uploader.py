"""uploader(): a panel to choose images, ask about them and watch the answer stream in.

The panel is an ipywidgets ``VBox``: a file picker, thumbnails, a prompt box, a model
dropdown, a choice between one answer about all images and one answer per image, Describe
and Stop buttons, the answer (Markdown), a status line and an error area.

Requests go through ``run_adescribe``, the same path as ``describe()``, on a background
event loop (see ``background``), so the kernel stays free and other cells run meanwhile.
Stop cancels the request's task, which closes the connection at once, even between words.
From that thread the panel only sets widget traits: no ``print``, no Output context manager.

Images arrive through the picker (see ``chooser`` and ``picker``: the file dialog, a drop, a
paste, the camera; large photos downscaled in the browser; bytes sent in acknowledged parts of
at most 1 MB as custom messages, never as synced widget state, so they are not saved with the
notebook). Where the picker cannot load, ipywidgets' ``FileUpload`` takes its place. The API
key is never put in any widget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
from IPython import get_ipython
from IPython.display import publish_display_data

from .._exceptions import RekaError
from ..answer import DEFAULT_PROMPT, Description
from ..client.aio import AsyncRekaClient, run_adescribe
from ..client.settings import DEFAULT_MODEL, redact
from ..client.structured import schema_of
from ..client.sync import RekaClient
from ..images import Media
from . import background
from .chooser import ImageChooser, descendants
from .picker import Received
from .uploader_job import (
    JUPYTER_MESSAGE_LIMIT,
    MAX_UPLOAD_BYTES,
    Job,
    PanelPresenter,
    answer_output,
    error_html,
    error_text,
    panel_client,
    progress_text,
    summary_text,
)

__all__ = ["JUPYTER_MESSAGE_LIMIT", "MAX_UPLOAD_BYTES", "Uploader", "uploader"]

MODES = (("One answer about all images together", "together"), ("One answer per image", "each"))
FALLBACK_TEXT = "Upload panel: run this cell to show it (it needs a running kernel)."
"""What a saved notebook shows in the panel's place once its kernel is gone."""
FALLBACK_HTML = (
    '<div class="reka-panel-fallback" style="padding:4px 8px;border:1px dashed;'
    f'border-radius:4px">{FALLBACK_TEXT}</div>'
)
SAVED_NOTE_HTML = (
    "<style>"
    ".jp-OutputArea-child:has(+ .jp-OutputArea-child > .jp-OutputArea-output.jupyter-widgets)"
    f' .reka-panel-note::before{{content:"{FALLBACK_TEXT}";display:block;padding:4px 8px;'
    "border:1px dashed;border-radius:4px}"
    ".jp-OutputArea-child:has(.reka-panel-note) + .jp-OutputArea-child"
    " > .jp-OutputArea-output.jupyter-widgets{display:none}"
    '</style><div class="reka-panel-note"></div>'
)
"""Shown just above the panel, and invisible unless JupyterLab could not draw the panel below it.

A trusted notebook saved without widget state reopens with JupyterLab's widget renderer in the
panel's place, and it says only "Error displaying widget: model not found" (the bundle's own
text and HTML are used only where widgets are not rendered at all). Its style puts
``FALLBACK_TEXT`` in that place instead: it applies only when the output below is the
renderer's error. Untrusted, the style is removed and the note is an empty line, and the
bundle's HTML says the same once.
"""
_CLOSE_WAIT = 5.0  # seconds close() waits for a stopped answer and the connections to close

ResultCallback = Callable[[Description], Any]


class Uploader(widgets.VBox):
    """An upload-and-describe panel; make it with ``reka_nb.uploader()``.

    ``client`` (a RekaClient or AsyncRekaClient) gives the settings; by default they come from
    the environment at each request, as for ``describe()``. ``max_bytes`` refuses larger
    files; other keyword arguments (max_tokens, temperature, ...) go with every request, and
    so do ``schema=``/``labels=``/``multi_label=`` (an unusable schema is refused here, when the
    panel is made): a structured answer is shown as a table of its fields, filling in.
    ``results`` lists the answers (``Description``); ``on_result`` calls back with each one.
    ``add(image)`` adds an image from code; ``received`` lists what arrived from the browser.
    """

    def __init__(
        self,
        client: RekaClient | AsyncRekaClient | None = None,
        *,
        prompt: str = DEFAULT_PROMPT,
        model: str | None = None,
        max_bytes: int = MAX_UPLOAD_BYTES,
        **params: Any,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a number of bytes above 0, not {max_bytes!r}")
        self._client = panel_client(client)
        self.max_bytes = max_bytes
        self.params = dict(params)
        schema, _ = schema_of(dict(params))  # an unusable schema: refused now, not at Describe
        if schema is not None:
            self.params["schema"] = schema
            self.params.pop("labels", None)
            self.params.pop("multi_label", None)
        self.results: list[Description] = []
        self._callbacks: list[ResultCallback] = []
        self._job: Job | None = None
        self._models_future: concurrent.futures.Future[None] | None = None
        self._models_task: asyncio.Task[None] | None = None
        self._closed = False
        problems: list[str] = []
        configured = self._configured_model(model, problems)

        self._chooser = ImageChooser(
            max_bytes, self._chosen, self._show_errors, on_busy=self._update_buttons
        )
        self.picker = self._chooser.picker
        self.upload = self._chooser.upload  # the fallback where the picker cannot load
        self.limits = self._chooser.limits
        self.thumbnails = self._chooser.thumbnails
        self.prompt = widgets.Textarea(
            value=prompt,
            description="Prompt",
            placeholder="Ask about the images",
            rows=2,
            layout=widgets.Layout(width="auto"),  # stretches; 100% plus margins would overflow
        )
        self.model = widgets.Dropdown(options=[configured], value=configured, description="Model")
        self.mode = widgets.RadioButtons(options=MODES, value="together")
        self.describe_button = widgets.Button(
            description="Describe", button_style="primary", icon="comment", disabled=True
        )
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.answer = widgets.Output()
        self.answer.add_class("reka-panel-answer")
        self.status = widgets.Label()
        self.status.add_class("reka-panel-status")
        self.error = widgets.HTML()
        super().__init__(
            children=[
                *self._chooser.widgets,
                self.prompt,
                self.model,
                self.mode,
                widgets.HBox([self.describe_button, self.stop_button]),
                self.answer,
                self.status,
                self.error,
            ]
        )
        self.describe_button.on_click(lambda _button: self.describe())
        self.stop_button.on_click(lambda _button: self.stop())
        self._show_errors(problems)
        self._models_future = asyncio.run_coroutine_threadsafe(
            self._list_models(configured), background.background_loop()
        )

    # -- public API -------------------------------------------------------------------------

    @property
    def images(self) -> list[Media]:
        """The images chosen, as they will be sent."""
        return [chosen.image for chosen in self._chooser.files]

    @property
    def names(self) -> list[str]:
        """The file names of the images chosen."""
        return [chosen.name for chosen in self._chooser.files]

    @property
    def received(self) -> list[Received]:
        """Each file that arrived from the browser's picker: sizes, parts, downscaled or not."""
        return list(self._chooser.picker.received)

    @property
    def running(self) -> bool:
        """True while an answer is being asked for."""
        return self._job is not None and not self._job.done.is_set()

    def on_result(self, callback: ResultCallback, remove: bool = False) -> None:
        """Call ``callback(description)`` for each answer; ``remove=True`` unregisters it.

        Callbacks run on the panel's background thread: change widgets from them, don't
        print. An exception in a callback is shown in the panel's error area.
        """
        if remove:
            self._callbacks = [cb for cb in self._callbacks if cb != callback]
        else:
            self._callbacks = [*self._callbacks, callback]

    def add(self, image: object, name: str | None = None) -> None:
        """Add an image from code to the chosen ones: anything ``describe()`` takes.

        ``name`` labels its thumbnail (default: a path's file name, else ``image N``).
        Raises ImageError, naming the input, when it is not an image that can be sent.
        """
        self._chooser.add(image, name)

    def describe(self) -> None:
        """Press Describe: ask about the chosen images in the background (returns at once)."""
        if self.running or self._closed:
            return
        if self._chooser.busy:
            self._show_errors(
                ["The images just chosen are still arriving: Describe once they are shown."]
            )
            return
        if not self._chooser.files:
            self._show_errors(["Choose one or more images first, with the button at the top."])
            return
        each = self.mode.value == "each"
        job = Job(list(self._chooser.files), self.prompt.value, str(self.model.value), each=each)
        self._job = job
        self.describe_button.disabled = True
        self.stop_button.disabled = False
        self._show_errors([])
        self._show(job)
        background.background_loop().call_soon_threadsafe(self._start, job)

    def stop(self) -> None:
        """Press Stop: cancel the request and close its connection; the partial text stays."""
        job = self._job
        if job is None or job.done.is_set():
            return
        self.stop_button.disabled = True
        self.status.value = f"{job.model} · stopping…"
        loop = background.existing_loop()
        if loop is not None:
            loop.call_soon_threadsafe(_cancel, job)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the model list and the current answer; False if ``timeout`` ran out."""
        if background.in_background_thread():
            raise RuntimeError("Uploader.wait() would hang on the panel's own background thread")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._models_future is not None:
            try:
                self._models_future.result(_remaining(deadline))
            except concurrent.futures.TimeoutError:
                return False
            except concurrent.futures.CancelledError:
                pass
        job = self._job
        return job is None or job.done.wait(_remaining(deadline))

    def close(self) -> None:
        """Stop any answer, close the panel's connections and every widget in it."""
        if getattr(self, "_closed", True):  # also when __init__ failed half way
            super().close()
            return
        self._closed = True
        self.stop()
        if self._models_future is not None:  # a slow model list must not outlive the panel
            self._models_future.cancel()
        self._chooser.close()
        loop = background.existing_loop()
        if loop is not None:
            closing = asyncio.run_coroutine_threadsafe(self._aclose(), loop)
            if not background.in_background_thread():
                with contextlib.suppress(Exception):
                    closing.result(_CLOSE_WAIT)
        for widget in list(descendants(self)):
            widget.close()
        super().close()

    def __repr__(self) -> str:
        files = self._chooser.files if hasattr(self, "_chooser") else []
        results = getattr(self, "results", [])
        model = self.model.value if hasattr(self, "model") else None
        s = "" if len(files) == 1 else "s"
        return f"<Uploader: {len(files)} image{s}, model {model!r}, {len(results)} result(s)>"

    # -- choosing images (the kernel's thread) ----------------------------------------------

    def _chosen(self) -> None:
        """A new choice: the answers about the previous one go (unless one is being asked)."""
        if not self.running:
            self.answer.outputs = ()
            self.status.value = ""
        self._update_buttons()

    def _update_buttons(self) -> None:
        """Describe is ready when images are chosen, none is still arriving, none is asked."""
        self.describe_button.disabled = (
            self.running or self._closed or self._chooser.busy or not self._chooser.files
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """Shown: the fallback replaces the picker if it has not loaded a little later.

        Where the panel cannot be drawn (a saved notebook opened without its kernel), the
        text and HTML in the bundle say to run the cell.
        """
        self._chooser.shown()
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            _publish_saved_note()
            bundle = {**bundle, "text/plain": FALLBACK_TEXT, "text/html": FALLBACK_HTML}
        return bundle

    # -- asking (the background loop's thread) ----------------------------------------------

    def _start(self, job: Job) -> None:
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        job.task.add_done_callback(lambda task: self._finished(job, task))

    async def _run(self, job: Job) -> None:
        for index, group in enumerate(job.groups):
            presenter = PanelPresenter(job, index, self._show)
            try:
                description = await run_adescribe(
                    self._client,
                    [chosen.as_upload() for chosen in group],
                    job.prompt,
                    model=job.model,
                    show=presenter,
                    **self.params,
                )
            except Exception as exc:
                job.error = exc
                return
            job.results.append(description)
            self._deliver(job, description)

    def _deliver(self, job: Job, description: Description) -> None:
        self.results.append(description)
        for callback in self._callbacks:
            try:
                callback(description)
            except Exception as exc:
                name = getattr(callback, "__qualname__", None) or repr(callback)
                job.problems.append(f"on_result callback {name} raised {error_text(exc)}")
                self._show_errors(job.problems)

    def _finished(self, job: Job, task: asyncio.Task[None]) -> None:
        """The end of a job, however it ended: final answer, status, errors; buttons back."""
        try:
            if task.cancelled():
                outcome = "stopped"
            else:
                if task.exception() is not None:  # a fault in the panel itself: show it too
                    job.error = task.exception()
                outcome = "failed" if job.error is not None else "done"
            if outcome != "done":
                job.end(outcome)
            self.answer.outputs = (answer_output(job),)
            self.status.value = summary_text(job, outcome)
            if job.error is not None:
                self._show_errors([error_text(job.error), *job.problems])
        finally:
            self.stop_button.disabled = True
            job.done.set()
            self._update_buttons()

    def _show(self, job: Job) -> None:
        """Show a job's answer so far (widget traits only: this runs on any thread)."""
        self.answer.outputs = (answer_output(job),)
        self.status.value = progress_text(job)

    async def _list_models(self, configured: str) -> None:
        """Fill the model dropdown from the server; close() cancels it, then no trait is set."""
        self._models_task = asyncio.current_task()
        try:
            names = [str(model) for model in await self._client.models()]  # ids, as str
        except Exception as exc:  # the list is a convenience: the configured model still works
            if not self._closed:
                why = error_text(exc)
                self._show_errors(
                    [f"Could not list the models, so only {configured} is offered: {why}"]
                )
            return
        if self._closed:
            return
        options = names if configured in names else [configured, *names]
        self.model.options = options
        self.model.value = configured

    async def _aclose(self) -> None:
        models = self._models_task
        if models is not None and not models.done():  # its connection closes before the pool
            models.cancel()
            await asyncio.wait([models], timeout=_CLOSE_WAIT)
        job = self._job
        if job is not None and job.task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(job.task), _CLOSE_WAIT)
        await self._client.aclose()

    # -- helpers ----------------------------------------------------------------------------

    def _configured_model(self, model: str | None, problems: list[str]) -> str:
        try:
            return self._client.settings(model).model
        except RekaError as exc:  # e.g. a bad REKA_BASE_URL: say so, still build the panel
            problems.append(error_text(exc))
            return model or self._client.model or DEFAULT_MODEL

    def _show_errors(self, lines: Sequence[str]) -> None:
        """Replace the error area's text (escaped; the key removed should any text hold it)."""
        try:
            key = self._client.settings().api_key
        except RekaError:
            key = None
        if not lines:
            self.error.value = ""
            return
        self.error.value = error_html([redact(line, key) for line in lines])


def uploader(
    client: RekaClient | AsyncRekaClient | None = None,
    *,
    prompt: str = DEFAULT_PROMPT,
    model: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    **params: Any,
) -> Uploader:
    """A panel to choose images, ask about them and watch the answer stream in.

    Show it by making it the last expression of a cell. See ``Uploader`` for the arguments.
    """
    return Uploader(client, prompt=prompt, model=model, max_bytes=max_bytes, **params)


def _cancel(job: Job) -> None:
    if job.task is not None:
        job.task.cancel()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _publish_saved_note() -> None:
    """In a kernel, publish ``SAVED_NOTE_HTML`` as its own output, just before the panel's."""
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    publish_display_data({"text/plain": "", "text/html": SAVED_NOTE_HTML})
