"""The web app's tabs; ``app.py`` assembles them. Each ``build_*_tab`` creates its ``gr.Tab``."""
