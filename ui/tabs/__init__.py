"""One module per tab of the page (Compare, Chat, Evaluate, Models): a class whose ``build()`` makes
the widgets and wires them to thin handlers; the logic is in ``medalpaca_core``.
"""
