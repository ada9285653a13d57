"""What the tabs show, as values and widgets: the shared settings accordion and status lines
(``common``), a ballot's columns (``ballot``), the leaderboard panel, the Models table
(``catalog``) and a column's prompt and adapter notes (``columns``).
"""
