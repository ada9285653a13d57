"""The Models tab: the registry as a table, with memory, availability and the paper's reference scores."""

from __future__ import annotations

import gradio as gr

from medalpaca_core.engine import Studio
from medalpaca_core.runtime.paths import public_paths
from ui.views.catalog import catalog

from ..views.common import disclaimer

# (header, CatalogRow field, column width): what the registry table shows, narrowest useful widths.
COLUMNS = [
    ("variant", "variant_id", "12%"),
    ("base", "base", "12%"),
    ("adapter", "adapter", "12%"),
    ("quant.", "quantization", "6%"),
    ("params", "params", "6%"),
    ("memory est.", "estimated", "7%"),
    ("memory loaded", "actual", "8%"),
    ("available", "available", "6%"),
    ("why", "why", "21%"),
    ("USMLE (paper)", "reference", "10%"),
]


class ModelsTab:
    """Builds the tab's widgets and holds the handler that reads the registry table from the studio."""

    def __init__(self, studio: Studio):
        self.studio = studio

    def table(self) -> list[list[str]]:
        """One row per variant, paths shown without this server's folders (``public_paths``)."""
        rows = []
        for row in catalog(self.studio):
            cells = {**row.__dict__, "available": "yes" if row.available else "no"}
            rows.append([public_paths(str(cells[field])) for _, field, _ in COLUMNS])
        return rows

    def build(self) -> gr.Dataframe:
        disclaimer()
        gr.Markdown(
            "Every variant the studio knows: the embedded default model in three precisions, LoRA adapters found "
            "in `assets/adapters/` and in your fine-tuned folder, and the paper's models on the Hugging Face Hub "
            "(they download on first use when the Hub is reachable). *USMLE (paper)* is the zero-shot accuracy the "
            "MedAlpaca paper reports, for reference; it was not measured here. Memory is estimated before loading; "
            "*memory loaded* is what a model takes once this app has loaded it."
        )
        models = gr.Dataframe(
            value=self.table,
            headers=[header for header, _, _ in COLUMNS],
            column_widths=[width for _, _, width in COLUMNS],
            max_height=900,
            interactive=False,
            wrap=True,
            label="Variants",
            show_search="search",
        )
        refresh = gr.Button("Refresh", size="md")
        refresh.click(self.table, None, models, api_name="models", concurrency_limit=None)
        return models


def build_models_tab(studio: Studio) -> ModelsTab:
    """The tab; the table refreshes when the tab is opened, since loaded memory changes as models load."""
    tab = ModelsTab(studio)
    with gr.Tab("Models") as page:
        models = tab.build()
    page.select(tab.table, None, models, api_visibility="private", concurrency_limit=None)
    return tab
