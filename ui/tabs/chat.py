"""The Chat tab: a multi-turn conversation with any one variant, streamed, in the same prompt format.

The conversation as the model saw it (raw text) lives in a ``gr.State``; the chatbot shows an
HTML-escaped copy with Markdown off, so model text appears exactly as written and never as markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.generation.answers import Answer, Status
from medalpaca_core.serving.ratelimit import RateLimiter
from medalpaca_core.text.visitor import plain_text

from ..views.common import (
    RunningTab,
    SettingsControls,
    admit,
    answer_status,
    disclaimer,
    finished,
    literal_html,
    paced,
    settings_accordion,
    settings_from,
    shown_as_message,
    user_error,
    while_running,
)
from ..views.pickers import PICKER_CLASS, unavailable_list

History = list[tuple[str, str]]
# Turns a session keeps: older ones seldom fit a prompt beside them, and the history lives in server
# memory for as long as the session does.
MAX_HISTORY_TURNS = 32


def chat_messages(history: History, pending: tuple[str, str] | None = None) -> list[dict[str, str]]:
    """The chatbot's messages for ``history`` (plus the turn being answered), escaped for display."""
    turns = [*history, pending] if pending else history
    messages = []
    for user, assistant in turns:
        messages.append({"role": "user", "content": literal_html(user)})
        if assistant:
            messages.append({"role": "assistant", "content": literal_html(assistant)})
    return messages


@dataclass
class ChatView:
    """What the chat's handlers update; ``show`` is every update, keyed by its component."""

    chatbot: gr.Chatbot
    message: gr.Textbox
    history: gr.State
    status: gr.Markdown

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.chatbot, self.message, self.history, self.status]

    def show(
        self, history: History, status: str = "", message: str = "", pending: tuple[str, str] | None = None
    ) -> dict[gr.components.Component, Any]:
        """The conversation (with the turn being answered), the message box, the kept history, the status line."""
        return {
            self.chatbot: chat_messages(history, pending),
            self.message: message,
            self.history: history,
            self.status: status,
        }


class ChatTab(RunningTab):
    """Builds the tab's widgets and holds the handlers that wire them to the studio."""

    view: ChatView  # made by build(), before any event can call a handler

    def chat(
        self,
        variant_id: str | None,
        message: str,
        history: History | None,
        request: gr.Request,
        seed: float | None = None,
        **setting_values: float | None,
    ) -> Iterator[dict[gr.components.Component, Any]]:
        """Stream one answer; the turn joins the history only when the model answered without error.

        ``seed`` is named so that API clients may leave it out (random), as the page's blank box does."""
        history = [tuple(turn) for turn in history or []]
        if not variant_id:
            raise user_error("No variant selected: pick the model variant to chat with.")
        admit(self.limiter, request)
        message = plain_text(message)
        settings = settings_from({**setting_values, "seed": seed})
        answer = Answer(variant_id)
        with self.cancels.running(request.session_hash) as cancel, shown_as_message():
            turns = self.studio.chat(variant_id, history, message, settings, cancel)
            for answer in paced(turns, lambda snapshot: snapshot.finished):
                yield self.view.show(history, answer_status(answer), pending=(message, answer.text))
        if answer.status == Status.ERROR:  # the message stays in its box, to send again
            yield self.view.show(history, answer_status(answer), message=message)
            return
        history = [*history, (message, answer.text)][-MAX_HISTORY_TURNS:]
        yield self.view.show(history, answer_status(answer))

    def retry(
        self, variant_id: str | None, history: History | None, request: gr.Request, **setting_values: float | None
    ) -> Iterator[dict[gr.components.Component, Any]]:
        """Answer the last message again (with sampling, a new answer; greedy gives the same one): the chatbot's
        retry button. The earlier answer is replaced when the new one is done."""
        history = [tuple(turn) for turn in history or []]
        if not history:
            raise user_error("Nothing to answer again yet: send a message first.")
        message, _ = history.pop()
        yield from self.chat(variant_id, message, history, request, **setting_values)

    def undo(self, history: History | None) -> dict[gr.components.Component, Any]:
        """Take back the last turn: it leaves the conversation and its message returns to the box, to edit."""
        history = [tuple(turn) for turn in history or []]
        if not history:
            return self.view.show([])
        message, _ = history.pop()
        return self.view.show(history, "The last turn was taken back; its message is in the box.", message=message)

    def clear(self) -> dict[gr.components.Component, Any]:
        return self.view.show([])

    def stop(self, request: gr.Request) -> None:
        self.cancels.stop(request.session_hash)

    def build(self) -> None:
        disclaimer()
        defaults = self.studio.default_variants(count=1)
        variant = gr.Dropdown(
            choices=self.studio.choices(),
            value=defaults[0] if defaults else None,
            label="Variant to chat with",
            elem_id="chat-variant",
            elem_classes=PICKER_CLASS,
            info="Earlier turns go into the prompt; the oldest are dropped when the context window is full.",
        )
        unavailable_list(self.studio)
        chatbot = gr.Chatbot(
            label="Conversation",
            height=420,
            render_markdown=False,
            allow_tags=False,
            latex_delimiters=[],
            feedback_options=None,
            buttons=["copy", "copy_all"],
            elem_id="chat-conversation",
            elem_classes="chat-text",
            placeholder="Ask a question to start; follow-up questions see the whole conversation.",
        )
        status = gr.Markdown("", elem_id="chat-status", elem_classes="answer-status")
        with gr.Row(equal_height=True):
            message = gr.Textbox(
                show_label=False,
                placeholder="Your message (Enter sends; Shift+Enter starts a new line)",
                lines=1,
                max_lines=6,
                scale=5,
                elem_id="chat-message",
            )
            send = gr.Button("Send", variant="primary", scale=1)
            stop = gr.Button("Stop", variant="stop", scale=1, interactive=False, elem_id="chat-stop")
            clear = gr.Button("New chat", scale=1)
        controls = settings_accordion()
        self.view = ChatView(chatbot, message, gr.State([]), status)

        self.answer_on([send.click, message.submit], self.chat, [variant, message], stop, controls, api_name="chat")
        self.answer_on([chatbot.retry], self.retry, [variant], stop, controls, api_visibility="private")
        chatbot.undo(self.undo, self.view.history, self.view.outputs, api_visibility="private", concurrency_limit=None)
        stop.click(self.stop, None, None, api_name="stop_chat", concurrency_limit=None)
        clear.click(self.clear, None, self.view.outputs, api_visibility="private", concurrency_limit=None)

    def answer_on(
        self,
        triggers: list[Any],
        handler: Any,
        inputs: list[Any],
        stop: gr.Button,
        controls: SettingsControls,
        **api: Any,
    ) -> None:
        """``handler`` streams an answer into the view on ``triggers`` (the history and settings as its last inputs),
        with Stop enabled for as long as it runs."""
        run = while_running(stop, triggers).then(
            handler,
            [*inputs, self.view.history],
            self.view.outputs,
            inputs_kwargs=controls.inputs,
            show_progress_on=self.view.status,
            concurrency_id="generate",
            **api,
        )
        finished(run, stop)


def build_chat_tab(studio: Studio, limiter: RateLimiter) -> ChatTab:
    chat = ChatTab(studio, limiter)
    with gr.Tab("Chat"):
        chat.build()
    return chat
